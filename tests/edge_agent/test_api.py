"""The REST API and answer flow with a fake model and a fake cloud (logic only; the real model
and gateway are in test_integration.py)."""

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings
from edge_fakes import CLOUD_TEXT, GUESS_TEXT, HELP_TEXT, FakeCloud, FakeModel

MATH = {"question": "What is 2 + 2?", "task": "math"}
HARD = {"question": "HARD: integrate x^x", "task": "math"}


def _client(tmp_path, cloud="ok", **settings):
    model = FakeModel()
    cloud = FakeCloud(cloud) if cloud else None
    s = EdgeSettings(outbox_path=str(tmp_path / "usage.sqlite"), flush_interval_s=3600, **settings)
    return TestClient(create_app(s, model=model, cloud=cloud)), model, cloud


def test_local_answer(tmp_path):
    client, _, cloud = _client(tmp_path)
    with client:
        r = client.post("/v1/answer", json=MATH)
        assert r.status_code == 200, r.text
        a = r.json()
        assert (a["route"], a["answer"], a["cloud_used"], a["cloud_skipped_reason"]) == \
               ("local", "4", False, "not_requested")
        assert a["cloud_part"] is None and a["completion_tokens"] == 20 and a["latency_s"] > 0
        assert cloud.assist_keys == []
        assert client.get("/health").json()["usage_pending"] == 1


def test_help_is_composed_with_the_cloud_completion(tmp_path):
    client, _, cloud = _client(tmp_path)
    with client:
        a = client.post("/v1/answer", json=HARD).json()
    assert (a["route"], a["cloud_used"], a["cloud_skipped_reason"], a["answer"]) == \
           ("cloud", True, None, "7")
    assert a["text"] == "<think>\nStep 1: This is hard.\n" + CLOUD_TEXT
    assert a["local_part"] == "<think>\nStep 1: This is hard.\n" and a["cloud_part"] == CLOUD_TEXT
    assert a["telemetry"]["window_ratio"] == 0.25 and a["cloud_completion_tokens"] == 15
    assert len(cloud.assist_keys) == 1 and len(cloud.assist_keys[0]) == 32


@pytest.mark.parametrize("cloud, options, reason", [
    ("refuse", {}, "budget_exhausted"),
    ("down", {}, "unavailable"),
    ("ok", {"allow_cloud": False}, "disabled"),
    (None, {}, "disabled"),
])
def test_help_without_the_cloud_is_a_flagged_local_answer(tmp_path, cloud, options, reason):
    client, model, _ = _client(tmp_path, cloud)
    with client:
        r = client.post("/v1/answer", json={**HARD, "options": options})
        assert r.status_code == 200
        a = r.json()
        assert (a["route"], a["cloud_used"], a["cloud_skipped_reason"]) == ("fallback", False, reason)
        # The device's best local answer, decoded again with the trigger banned, flagged as such.
        assert a["reanswered"] and a["text"] == GUESS_TEXT and a["answer"] == "5" and a["requested_help"]
        assert a["local_part"] == "<think>\nStep 1: This is hard.\n" and model.biases == [-math.inf]
        metrics = client.get("/metrics").text
    assert f'edge_cloud_skipped_total{{reason="{reason}",task="math"}} 1.0' in metrics
    assert 'edge_help_requests_total{task="math"} 1.0' in metrics  # the help request still counts


def test_fallback_without_reanswer_keeps_the_bare_local_prefix(tmp_path):
    client, model, _ = _client(tmp_path, "down", fallback_reanswer=False)
    with client:
        a = client.post("/v1/answer", json=HARD).json()
    assert a["route"] == "fallback" and not a["reanswered"]
    assert a["text"] == HELP_TEXT and a["answer"] is None and model.biases == []


def test_usage_is_reported_with_help_requests_and_flushed_at_shutdown(tmp_path):
    client, _, cloud = _client(tmp_path)
    with client:
        for body in (MATH, HARD, MATH):
            assert client.post("/v1/answer", json=body).status_code == 200
    assert [(t, r, h) for t, r, h, _ in cloud.reports] == [("math", 3, 1)]
    # The Assist named the report that counted its response, as one help request of one response.
    assert cloud.assists == [(1, 1, cloud.reports[0][3])] and cloud.offline == [0]


@pytest.mark.parametrize("mode, options, offline", [
    ("refuse", {}, 0),  # the gateway saw the refused Assist and counted its help itself
    ("down", {}, 1),  # never reached the gateway: reported as offline
    ("ok", {"allow_cloud": False}, 1),
])
def test_fallback_help_is_reported_offline_only_when_the_gateway_never_saw_it(tmp_path, mode, options, offline):
    client, _, cloud = _client(tmp_path, mode)
    with client:
        assert client.post("/v1/answer", json={**HARD, "options": options}).status_code == 200
        cloud.mode = "ok"  # deliver the report at shutdown
    assert [r[1:3] for r in cloud.reports] == [(1, 1)] and cloud.offline == [offline]


@pytest.mark.parametrize("body, status, needle", [
    ({"task": "math", "question": ""}, 422, "at least 1 character"),
    ({"task": "math", "question": "   "}, 422, "blank"),
    ({"task": "math", "question": "x" * 16_001}, 422, "at most 16000"),
    ({"task": "nope", "question": "hi"}, 422, "unknown task 'nope'"),
    ({"task": "math", "question": 5}, 422, "string"),
    ({"task": "math", "question": "hi", "options": {"max_tokens": "5"}}, 422, "integer"),
    ({"task": "math", "question": "hi", "options": {"max_tokens": 5000}}, 422, "limit of 1024"),
    ({"task": "math", "question": "hi", "colour": "red"}, 422, "Extra inputs"),
    ({"task": "science", "question": "Which gas?"}, 422, "give 'choices'"),
    ({"task": "math", "question": "hi", "choices": ["a", "b"]}, 422, "must be empty"),
    ({"task": "math", "question": "OVERFLOW"}, 422, "context window"),
    ({"task": "math", "question": "hi", "example_id": "science/test/1"}, 422, "belongs to task"),
])
def test_bad_input_is_a_clear_4xx(tmp_path, body, status, needle):
    client, model, _ = _client(tmp_path)
    with client:
        r = client.post("/v1/answer", json=body)
    assert r.status_code == status and needle in r.text, r.text


def test_full_queue_answers_503_with_retry_after(tmp_path):
    client, model, _ = _client(tmp_path, queue_size=1)
    model.gate = threading.Event()
    with client, ThreadPoolExecutor(4) as pool:
        held = [pool.submit(client.post, "/v1/answer", json=MATH)]
        assert model.entered.wait(10)  # the first request holds the model thread
        held.append(pool.submit(client.post, "/v1/answer", json=MATH))
        deadline = time.time() + 10
        while client.get("/health").json()["queue_depth"] < 1 and time.time() < deadline:
            time.sleep(0.01)
        r = client.post("/v1/answer", json=MATH)
        model.gate.set()
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert [f.result().status_code for f in held] == [200, 200]
        assert "edge_rejected_total 1.0" in client.get("/metrics").text


def test_adapter_swap_happens_between_requests(tmp_path):
    adapter = tmp_path / "a.gguf"
    adapter.write_bytes(b"not read by the fake model")
    client, model, _ = _client(tmp_path)
    model.gate = threading.Event()
    with client, ThreadPoolExecutor(4) as pool:
        before = pool.submit(client.post, "/v1/answer", json=MATH)
        time.sleep(0.2)
        swap = pool.submit(client.post, "/v1/adapter", json={"path": str(adapter)})
        time.sleep(0.2)
        after = pool.submit(client.post, "/v1/answer", json=MATH)
        model.gate.set()
        assert [f.result().status_code for f in (before, swap, after)] == [200, 200, 200]
        assert client.get("/v1/adapter").json()["adapter"]["path"] == str(adapter)
        missing = client.post("/v1/adapter", json={"path": str(tmp_path / "missing.gguf")})
    assert [a for _, a in model.calls] == [None, str(adapter)]
    assert missing.status_code == 404


def test_metrics_and_health(tmp_path):
    client, _, _ = _client(tmp_path)
    with client:
        client.post("/v1/answer", json=MATH)
        client.post("/v1/answer", json=HARD)
        m = client.get("/metrics").text
        h = client.get("/health").json()
    for line in ('edge_answers_total{route="local",task="math"} 1.0',
                 'edge_answers_total{route="cloud",task="math"} 1.0',
                 'edge_help_requests_total{task="math"} 1.0',
                 'edge_generated_tokens_total{task="math"} 32.0',
                 'edge_collab_ratio{source="local",task="math"} 0.5',
                 'edge_collab_ratio{source="gateway",task="math"} 0.25',
                 'edge_answer_latency_seconds_count{route="cloud"} 1.0',
                 'edge_queue_depth 0.0'):
        assert line in m, line
    assert h["status"] == "ok" and h["cloud"] is True


def test_adapter_from_a_run_dir_is_exported_and_reports_lambda(tmp_path):
    import json

    from edge_adapters import write_random_adapter

    write_random_adapter(tmp_path / "run" / "adapter", seed=0, r=2)
    (tmp_path / "run" / "state.json").write_text(json.dumps({"lambda": 0.75, "step": 3}))
    client, model, _ = _client(tmp_path)
    with client:
        r = client.post("/v1/adapter", json={"path": str(tmp_path / "run")})
        bad = client.post("/v1/adapter", json={"path": str(tmp_path)})
        metrics = client.get("/metrics").text
    assert r.status_code == 200, r.text
    assert r.json()["adapter"]["lambda"] == 0.75
    assert model.adapter_path == str(tmp_path / "run" / "adapter" / "adapter.gguf")
    assert "edge_lambda 0.75" in metrics
    assert bad.status_code == 422 and "neither a peft adapter" in bad.text
