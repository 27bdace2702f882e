"""The credit bucket and window arithmetic, against hand-computed numbers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab import budget as b

P = b.PPM


def policy(tau=0.25, mode="enforce", burst=2, window=4, schedule=None):
    return b.Policy(schedule=schedule or ((0, b.to_ppm(tau)),), mode=mode, burst_ppm=burst * P, window=window)


def test_fresh_budget_starts_full():
    assert b.fresh(policy(burst=3)).credit_ppm == 3 * P


def test_enforce_spends_then_refuses_then_earns():
    p = policy(tau=0.25, burst=2)
    c = b.fresh(p)  # credit 2
    ok1, c = b.assist(c, p)
    ok2, c = b.assist(c, p)
    ok3, c = b.assist(c, p)
    assert (ok1, ok2, ok3) == (True, True, False)
    assert (c.cloud_calls, c.denials, c.credit_ppm) == (2, 1, 0)
    c = b.report(c, p, responses=3, help_requests=3)  # earns 0.75: still < 1
    assert c.credit_ppm == 750_000
    assert b.assist(c, p)[0] is False
    c = b.report(c, p, responses=1, help_requests=0)  # 1.0 credit
    ok, c = b.assist(c, p)
    assert ok and c.credit_ppm == 0


def test_credit_is_capped_at_burst():
    p = policy(tau=0.5, burst=2)
    c = b.report(b.fresh(p), p, responses=100, help_requests=0)
    assert c.credit_ppm == 2 * P


def test_meter_never_refuses_and_floors_credit_at_zero():
    p = policy(tau=0.1, mode="meter", burst=1)
    c = b.fresh(p)
    for _ in range(3):
        ok, c = b.assist(c, p)
        assert ok
    assert (c.cloud_calls, c.denials, c.credit_ppm) == (3, 0, 0)
    c = b.report(c, p, 5, 0)  # 0.5 credit; meter spends it down to 0
    ok, c = b.assist(c, p)
    assert ok and c.credit_ppm == 0


def test_schedule_tau_is_the_one_in_force_before_the_report():
    sched = ((0, 100_000), (10, 300_000), (20, 700_000))
    assert [b.tau_at(sched, n) for n in (0, 9, 10, 19, 20, 10**9)] == [
        100_000, 100_000, 300_000, 300_000, 700_000, 700_000]
    p = policy(schedule=sched, burst=100)
    c = b.Counters(credit_ppm=0)
    c = b.report(c, p, 10, 0)  # 10 * 0.1 = 1.0 (tau at 0 responses)
    c = b.report(c, p, 10, 0)  # 10 * 0.3 = 3.0 (tau at 10)
    c = b.report(c, p, 1, 0)  # 0.7 (tau at 20)
    assert c.credit_ppm == 1_000_000 + 3_000_000 + 700_000


def test_window_covers_open_plus_previous_window():
    p = policy(window=4)
    c = b.fresh(p)
    c = b.report(c, p, 2, 2)  # open: 2/2
    assert (c.win_responses, c.win_help, b.window_ratio(c)) == (2, 2, 1.0)
    c = b.report(c, p, 2, 0)  # open reaches 4 -> closes: prev 4/2, open 0/0
    assert (c.prev_responses, c.prev_help, c.win_responses) == (4, 2, 0)
    assert b.window_ratio(c) == 0.5
    c = b.report(c, p, 1, 1)  # (2 + 1) / (4 + 1)
    assert b.window_ratio(c) == pytest.approx(3 / 5)
    c = b.report(c, p, 3, 0)  # closes: prev 4/1, so the first window is gone
    assert b.window_ratio(c) == 0.25
    assert b.lifetime_ratio(c) == 3 / 8


def test_ratio_of_nothing_is_zero():
    assert b.lifetime_ratio(b.Counters()) == 0.0 and b.window_ratio(b.Counters()) == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(schedule=((1, 0),)), "schedule"),
        (dict(schedule=((0, 0), (0, 1))), "schedule"),
        (dict(schedule=((0, 1_000_001),)), "tau"),
        (dict(mode="loose"), "mode"),
        (dict(burst=0), "burst"),
        (dict(window=0), "window_responses"),
    ],
)
def test_invalid_policies_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        policy(**kwargs)


def test_to_ppm_is_exact_for_typical_taus():
    assert [b.to_ppm(t) for t in (0.0, 0.1, 0.3, 0.7, 1.0)] == [0, 100_000, 300_000, 700_000, P]

op = st.one_of(st.tuples(st.just("report"), st.integers(0, 20), st.integers(0, 20)), st.just(("assist",)))


@settings(max_examples=200, deadline=None)
@given(tau=st.integers(0, b.PPM), burst=st.integers(1, 5), ops=st.lists(op, max_size=60))
def test_enforce_never_exceeds_tau_times_responses_plus_burst(tau, burst, ops):
    p = b.Policy(((0, tau),), "enforce", burst * b.PPM, 8)
    c = b.fresh(p)
    for o in ops:
        if o[0] == "report":
            c = b.report(c, p, o[1], min(o[1], o[2]))
        else:
            _, c = b.assist(c, p)
        assert 0 <= c.credit_ppm <= p.burst_ppm
        assert c.cloud_calls * b.PPM <= tau * c.responses + p.burst_ppm
        assert c.win_responses < p.window


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(op, max_size=40))
def test_meter_allows_everything(ops):
    p = b.Policy(((0, 100_000),), "meter", b.PPM, 8)
    c = b.fresh(p)
    for o in ops:
        if o[0] == "assist":
            ok, c = b.assist(c, p)
            assert ok
    assert c.denials == 0


def test_a_group_with_k_help_requests_spends_k_credits():
    p = policy(tau=0.5, burst=4)
    ok, c = b.assist(b.fresh(p), p, 3)  # credit 4 -> 1
    assert ok and c.credit_ppm == 1 * P
    ok, c = b.assist(c, p, 3)  # 1 credit left: allowed, ends in debt 1 - 3 = -2
    assert ok and c.credit_ppm == -2 * P
    assert b.assist(c, p, 1)[0] is False  # refused until responses repay the debt
    c = b.report(c, p, 6, 0)  # earns 6 * 0.5 = 3 -> 1
    ok, c = b.assist(c, p, 0)  # a call serving no help request still costs one credit
    assert ok and c.credit_ppm == 0
    assert c.cloud_calls == 3


def test_meter_mode_spends_k_and_floors_at_zero():
    p = policy(mode="meter", burst=4)
    ok, c = b.assist(b.fresh(p), p, 3)
    assert ok and c.credit_ppm == P
    ok, c = b.assist(c, p, 3)
    assert ok and c.credit_ppm == 0


def test_assist_help_counts_a_call_without_group_as_one():
    assert [b.assist_help(h, g) for h, g in ((3, 8), (0, 1), (0, 0), (5, 0))] == [3, 0, 1, 1]


@pytest.mark.parametrize("seen, reported, offline, expected", [
    (4, 4, 0, 4),  # honest, everything seen
    (2, 4, 0, 2),  # over-report without offline: only what was seen counts
    (4, 2, 0, 4),  # under-report: the gateway's own count
    (2, 4, 2, 4),  # two requests offline (cloud unreachable)
    (3, 4, 2, 4),  # one of the two "offline" Assist calls did land (lost answer): counted once
    (2, 9, 3, 5),  # offline believed only up to seen + offline
    (4, 3, 1, 4),  # under-report hidden behind an offline claim: still caught
])
def test_report_help(seen, reported, offline, expected):
    assert b.report_help(seen, reported, offline) == expected


def test_report_counts_the_gateway_help_and_the_mismatch():
    p = policy(window=100)
    c = b.report(b.fresh(p), p, 8, 4, reported_help=1)
    assert (c.help_requests, c.reported_help, c.mismatches, c.win_help) == (4, 1, 1, 4)
    c = b.report(c, p, 8, 2, reported_help=2)
    assert (c.help_requests, c.reported_help, c.mismatches) == (6, 3, 1)
    assert b.lifetime_ratio(c) == 6 / 16


def test_late_help_enters_the_count_not_a_report():
    c = b.late_help(b.Counters(help_requests=2, win_help=1), 3)
    assert (c.help_requests, c.win_help, c.responses, c.mismatches) == (5, 4, 0, 0)


@settings(max_examples=200, deadline=None)
@given(tau=st.integers(0, b.PPM), burst=st.integers(1, 5),
       ops=st.lists(st.one_of(st.tuples(st.just("report"), st.integers(0, 20)),
                              st.tuples(st.just("assist"), st.integers(0, 8))), max_size=60))
def test_enforce_serves_at_most_tau_n_plus_burst_plus_group_overshoot(tau, burst, ops):
    p = b.Policy(((0, tau),), "enforce", burst * b.PPM, 8)
    c, served = b.fresh(p), 0
    for o in ops:
        if o[0] == "report":
            c = b.report(c, p, o[1], 0)
        else:
            ok, c = b.assist(c, p, o[1])
            served += max(1, o[1]) if ok else 0
        assert served * b.PPM <= tau * c.responses + p.burst_ppm + 7 * b.PPM
        assert c.credit_ppm >= (1 - 8) * b.PPM


# -- claim and calls buckets (issue 22 item 4) ----------------------------------------------------
LIM = b.Limits(responses_rate=b.per_ms_ppm(2.0), responses_burst=10, assists_rate=b.per_ms_ppm(0.5), assists_burst=2)


def test_rates_per_second_are_ppm_per_millisecond():
    assert (b.per_ms_ppm(100.0), b.per_ms_ppm(2.0), b.per_ms_ppm(0.001)) == (100_000, 2_000, 1)
    with pytest.raises(ValueError, match="at least 1"):
        b.Limits(0, 1, 1, 1)
    with pytest.raises(ValueError, match="at most"):
        b.Limits(1, b.MAX_BURST + 1, 1, 1)


def test_buckets_start_full_and_refill_with_time_up_to_their_size():
    c = b.refill(b.Counters(), LIM, now_ms=1_000_000)  # clock 0: full
    assert (c.claim_ppm, c.calls_ppm, c.clock_ms) == (10 * P, 2 * P, 1_000_000)
    c = b.refill(b.replace(c, claim_ppm=0, calls_ppm=0), LIM, now_ms=1_001_500)  # 1.5 s: 3 responses, 0.75 call
    assert (c.claim_ppm, c.calls_ppm) == (3 * P, 750_000)
    assert b.refill(c, LIM, now_ms=1_000_000) == c  # a clock behind adds nothing, never moves back


def test_a_report_is_believed_up_to_the_claim_bucket_and_the_rest_is_flagged():
    p = policy(tau=0.25, burst=2)
    c = b.replace(b.fresh(p), credit_ppm=0)
    believed, c = b.bounded_report(c, p, LIM, 5_000, responses=10**9, help_requests=1, reported_help=0)
    assert believed == 10 and (c.responses, c.help_requests, c.flagged, c.excess) == (10, 1, 1, 10**9 - 10)
    assert c.credit_ppm == 2 * P and c.claim_ppm == 0  # 10 * 0.25 = 2.5, capped at burst 2
    believed, c = b.bounded_report(c, p, LIM, 5_250, responses=1, help_requests=0, reported_help=0)
    assert believed == 0 and (c.flagged, c.excess, c.claim_ppm) == (2, 10**9 - 9, 500_000)  # 0.25 s: half
    believed, c = b.bounded_report(c, p, LIM, 6_000, responses=2, help_requests=0, reported_help=0)
    assert believed == 2 and c.flagged == 2 and c.responses == 12 and c.claim_ppm == 0  # 0.5 + 1.5 = 2


def test_an_assist_needs_credit_and_a_call_token():
    p = policy(tau=0.25, mode="meter", burst=4)
    c = b.fresh(p)
    out = []
    for t in (10_000, 10_001, 10_002, 11_000, 12_000):
        ok, c = b.bounded_assist(c, p, LIM, t)
        out.append(ok)
    # 2 tokens at start; +0.5 after 1 s (still < 1); +1 after 2 s in all: one more
    assert out == [True, True, False, False, True]
    assert (c.cloud_calls, c.throttled, c.denials) == (3, 2, 0)
    assert b.was_throttled(False, "meter", 0) and b.was_throttled(False, "enforce", P)
    e = policy(tau=0.25, mode="enforce", burst=1)
    c = b.fresh(e)
    ok, c = b.bounded_assist(c, e, LIM, 10_000)
    ok2, c2 = b.bounded_assist(c, e, LIM, 10_000)  # no credit: a denial, no call token taken
    assert ok and not ok2 and (c2.denials, c2.throttled, c2.calls_ppm) == (1, 0, c.calls_ppm)
    assert not b.was_throttled(ok2, "enforce", c2.credit_ppm)


def test_rpc_token_bucket_of_the_limiter():
    from cloud_gateway.limiter import DeviceLimiter, Throttled, take

    assert take(3.0, 0.0, 0.0, 1.0, 3) == (True, 2.0)
    assert take(0.5, 0.0, 0.25, 2.0, 3) == (True, 0.0)  # 0.5 + 0.25 s * 2/s = 1
    assert take(0.0, 0.0, 10.0, 2.0, 3) == (True, 2.0)  # capped at 3 before the take
    assert take(0.2, 1.0, 0.5, 2.0, 3) == (False, 0.2)  # a clock behind adds nothing
    now = [0.0]
    lim = DeviceLimiter(per_s=1.0, burst=1, concurrent=1, clock=lambda: now[0])
    with lim.admit("d1", False):
        with pytest.raises(Throttled, match="in flight"):
            with lim.admit("d1", False):
                pass
        with lim.admit("d1", True):  # an admin of that name is another principal
            pass
    with pytest.raises(Throttled, match="calls/s"):
        with lim.admit("d1", False):
            pass
    now[0] = 1.0
    with lim.admit("d1", False):
        pass
