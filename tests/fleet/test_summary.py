"""Fleet tallies from outcomes, and how a reply becomes an outcome (hand-counted)."""

import pytest

from deploy.loadgen import Outcome, answer_bodies, outcome_of
from deploy.summary import counts_agree, device_rows, summarize, task_rows


def out(device, task, status, helped=False, denied=False, lat=1.0, t=1.0):
    return Outcome(t, device, task, status, helped, denied, lat, None)


OUTCOMES = [
    out("d1", "math", "local", lat=1.0),
    out("d1", "math", "cloud", helped=True, lat=3.0),
    out("d1", "science", "fallback", helped=True, denied=True, lat=2.0),
    out("d2", "math", "local", lat=4.0),
    out("d2", "math", "rejected", lat=0.01),
    out("d2", "science", "error", lat=0.02),
]


def test_device_rows_count_answers_help_denials_and_latency_of_answers_only():
    rows = device_rows(OUTCOMES, ["d1", "d2", "d3"])
    d1, d2, d3 = rows["d1"], rows["d2"], rows["d3"]
    assert (d1["answers"], d1["help_requests"], d1["denials"], d1["cloud"]) == (3, 2, 1, 1)
    assert d1["ratio"] == pytest.approx(2 / 3)
    assert d1["latency_p50_s"] == 2.0 and d1["latency_p99_s"] == pytest.approx(2.98)
    # the 503 and the error are not answers and do not enter the latency
    assert (d2["answers"], d2["rejected"], d2["errors"], d2["latency_p50_s"]) == (1, 1, 1, 4.0)
    assert d3["answers"] == 0 and d3["ratio"] is None and d3["latency_p50_s"] is None


def test_task_rows_put_ratio_against_tau():
    rows = task_rows(OUTCOMES, {"math": 0.3, "science": 0.5})
    assert rows["math"]["answers"] == 3 and rows["math"]["ratio"] == pytest.approx(1 / 3)
    assert rows["math"]["ratio_minus_tau"] == pytest.approx(1 / 3 - 0.3)
    assert rows["science"]["answers"] == 1 and rows["science"]["ratio_minus_tau"] == 0.5


def test_summarize_totals_and_rate():
    s = summarize(OUTCOMES, ["d1", "d2"], {"math": 0.3, "science": 0.5}, wall_s=2.0)
    t = s["total"]
    assert (t["requests"], t["answers"], t["help_requests"], t["denials"]) == (6, 4, 2, 1)
    assert t["answers_per_s"] == 2.0
    assert t["latency_p50_s"] == 2.5 and t["latency_max_s"] == 4.0  # of 1, 2, 3, 4
    assert set(s["per_device"]) == {"d1", "d2"} and set(s["per_task"]) == {"math", "science"}


@pytest.mark.parametrize("code, body, status, helped, denied", [
    (200, {"route": "local", "requested_help": False, "cloud_skipped_reason": "not_requested",
           "telemetry": None}, "local", False, False),
    (200, {"route": "cloud", "requested_help": True, "cloud_skipped_reason": None,
           "telemetry": {"tau": 0.3}}, "cloud", True, False),
    (200, {"route": "fallback", "requested_help": True, "cloud_skipped_reason": "budget_exhausted",
           "telemetry": {"tau": 0.3}}, "fallback", True, True),
    (200, {"route": "fallback", "requested_help": True, "cloud_skipped_reason": "unavailable",
           "telemetry": None}, "fallback", True, False),
    (503, None, "rejected", False, False),
    (422, None, "error", False, False),
    (0, None, "error", False, False),  # no HTTP reply at all
])
def test_outcome_of_classifies_replies(code, body, status, helped, denied):
    o = outcome_of("d1", "math", 5.0, 0.5, code, body)
    assert (o.status, o.requested_help, o.denied) == (status, helped, denied)
    assert o.tau == (0.3 if body and body["telemetry"] else None)


def test_answer_bodies_interleave_tasks_and_name_their_examples():
    bodies = answer_bodies(["math", "science"], 3, max_tokens=16)
    assert [b["task"] for b in bodies] == ["math", "science"] * 3
    assert bodies[0]["example_id"] == "math/test/0" and bodies[1]["example_id"] == "science/test/0"
    assert bodies[0]["choices"] == [] and len(bodies[1]["choices"]) >= 2
    assert bodies[0]["options"] == {"max_tokens": 16, "temperature": 0.0}


def test_counts_agree_compares_every_counter_of_every_row():
    rows = task_rows(OUTCOMES, {"math": 0.3, "science": 0.5})
    gateway = {"math": {"responses": 3, "help_requests": 1, "denials": 0, "cloud_calls": 1},
               "science": {"responses": 1, "help_requests": 1, "denials": 1, "cloud_calls": 0}}
    assert counts_agree(rows, gateway)
    gateway["science"]["denials"] = 0
    assert not counts_agree(rows, gateway)
    assert not counts_agree(rows, {"math": gateway["math"]})  # a row the gateway never saw
