"""`--tau-at`: its syntax, the schedule it makes, the before/after ratios of the summary and the
plot's trailing ratio (hand-computed)."""

import pytest

from deploy.loadgen import Outcome
from deploy.plots import trailing_ratio
from deploy.summary import tau_change_rows, tau_segments
from deploy.tau_changes import TauChange, parse_tau_at, tau_timeline


def test_parse_every_task_and_one_task():
    assert parse_tau_at("60:0.1") == TauChange(at_s=60, tau=0.1)
    assert parse_tau_at(" 90.5 : math = 0.25 ") == TauChange(at_s=90.5, tau=0.25, task="math")
    assert parse_tau_at("0:1") == TauChange(at_s=0, tau=1.0)


@pytest.mark.parametrize("text, says", [
    ("0.1", "expected 'SECONDS:TAU'"),
    ("60:", "expected 'SECONDS:TAU'"),
    (":0.1", "expected 'SECONDS:TAU'"),
    ("sixty:0.1", "SECONDS 'sixty' is not a number"),
    ("60:math=", "TAU '' is not a number"),
    ("60:=0.1", "no task before '='"),
    ("60:math=high", "TAU 'high' is not a number"),
    ("-5:0.1", "SECONDS must be >= 0"),
    ("60:1.5", "TAU must lie in [0, 1]"),
])
def test_parse_refuses_bad_syntax_saying_what_is_wrong(text, says):
    with pytest.raises(ValueError) as e:
        parse_tau_at(text)
    assert says in str(e.value)


def test_timeline_per_task_in_time_order():
    changes = [TauChange(at_s=120, tau=0.5, task="math"), TauChange(at_s=60, tau=0.1)]
    assert tau_timeline(0.3, changes, ["math", "science"]) == {
        "math": [(0, 0.3), (60, 0.1), (120, 0.5)], "science": [(0, 0.3), (60, 0.1)]}
    # a change at 0 replaces the starting tau
    assert tau_timeline(0.3, [TauChange(at_s=0, tau=0.2)], ["math"]) == {"math": [(0, 0.2)]}


def out(t, task="math", helped=False, status="local"):
    return Outcome(t, "d1", task, status, helped, False, 1.0, None)


# tau 0.3 over [0, 40), 0.1 over [40, 80]; last quarters [30, 40) and [70, 80]
OUTCOMES = [out(5, helped=True), out(31, helped=True), out(35), out(39.9, helped=True),
            out(41, helped=True), out(71), out(75, helped=True), out(78), out(80),
            out(72, status="rejected"), out(33, task="science", helped=True)]


def test_segments_count_the_whole_stretch_and_its_last_quarter():
    segs = tau_segments(OUTCOMES, "math", [(0, 0.3), (40, 0.1)], end_s=80)
    first, second = segs
    assert (first["from_s"], first["to_s"], first["tau"]) == (0, 40, 0.3)
    assert (first["answers"], first["help_requests"]) == (4, 3)
    assert first["last_quarter"] == {"from_s": 30, "answers": 3, "help_requests": 2, "ratio": pytest.approx(2 / 3)}
    # the reply at exactly the end belongs to the last stretch; the 503 is no answer
    assert (second["answers"], second["help_requests"]) == (5, 2)
    assert second["last_quarter"] == {"from_s": 70, "answers": 4, "help_requests": 1, "ratio": 0.25}


def test_change_rows_put_before_beside_after():
    segs = {"math": tau_segments(OUTCOMES, "math", [(0, 0.3), (40, 0.1)], 80),
            "science": tau_segments(OUTCOMES, "science", [(0, 0.3)], 80)}
    assert tau_change_rows(segs) == [{"task": "math", "at_s": 40, "tau_before": 0.3, "tau_after": 0.1,
                                      "ratio_before": pytest.approx(2 / 3), "answers_before": 3,
                                      "ratio_after": 0.25, "answers_after": 4}]


def test_an_empty_quarter_has_no_ratio():
    (seg,) = tau_segments([out(1)], "math", [(0, 0.3)], end_s=40)
    assert seg["last_quarter"]["answers"] == 0 and seg["last_quarter"]["ratio"] is None


def test_trailing_ratio_uses_the_last_answers_only():
    outs = [out(t, helped=h) for t, h in [(1, True), (2, True), (3, False), (4, False)]]
    assert trailing_ratio(outs, "math", window=2) == ([1, 2, 3, 4], [1.0, 1.0, 0.5, 0.0])


def test_the_summary_uses_the_changes_the_gateway_took(tmp_path):
    """An interrupted load may end before a planned change: its stretch is not reported."""
    from deploy.fleet import Fleet, FleetConfig, applied_timeline

    cfg = FleetConfig(out_dir=tmp_path, duration_s=600, tau_changes=[TauChange(at_s=100, tau=0.1),
                                                                     TauChange(at_s=300, tau=0.5, task="math")])
    fleet = Fleet(cfg, tau_applied=[{"at_s": 100, "applied_s": 100.01, "task": t, "tau": 0.1}
                                    for t in cfg.tasks])
    assert applied_timeline(fleet) == {"math": [(0, 0.3), (100, 0.1)], "science": [(0, 0.3), (100, 0.1)]}
    assert cfg.timeline()["math"] == [(0, 0.3), (100, 0.1), (300, 0.5)]


def test_the_plot_draws_ratio_and_tau_over_the_load(tmp_path):
    from deploy.plots import plot_fleet

    path = plot_fleet(OUTCOMES, {"math": [(0, 0.3), (40, 0.1)], "science": [(0, 0.3)]}, tmp_path / "f.png", 90)
    assert path.stat().st_size > 10_000
