"""The help knob on the agent (fake model: ask score +1 for 'HARD' questions, -1 otherwise):
the bias follows the gateway's tau, a request may lower the target, /v1/budget shows it."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from collab.help_knob import calibrate_bias
from edge_agent.api import create_app
from edge_agent.knob import HelpKnobs, load_calibration
from edge_agent.settings import EdgeSettings
from edge_fakes import FakeCloud, FakeModel, telemetry

HARD = {"question": "HARD: integrate x^x", "task": "math"}
EASY = {"question": "What is 2 + 2?", "task": "math"}


def _client(tmp_path, **settings):
    model, cloud = FakeModel(), FakeCloud("ok")
    s = EdgeSettings(outbox_path=str(tmp_path / "usage.sqlite"), flush_interval_s=3600, help_knob=True, **settings)
    return TestClient(create_app(s, model=model, cloud=cloud)), model, cloud


def test_bias_is_the_quantile_of_recent_scores_at_the_gateways_tau(tmp_path):
    client, model, _ = _client(tmp_path, knob_default_tau=0.5, knob_gain=0.0)
    with client:
        first = client.post("/v1/answer", json=HARD).json()
        assert first["help_bias"] == 0.0 and first["route"] == "cloud"  # no scores yet: bias 0
        client.post("/v1/answer", json=EASY)
        # scores [+1, -1]; the Assist's telemetry put tau at 0.3 -> round(0.6) = 1 asks: bias 0
        a = client.post("/v1/answer", json=HARD).json()
        assert a["help_bias"] == pytest.approx(calibrate_bias([1.0, -1.0], 0.3)) and a["route"] == "cloud"
        budget = client.get("/v1/budget").json()
    knob = budget["tasks"]["math"]["knob"]
    assert budget["help_knob"] and knob["tau"] == 0.3 and knob["scores_seen"] == 3
    assert budget["tasks"]["math"]["tau"] == 0.3 and budget["tasks"]["math"]["answers"] == 3


def test_a_request_may_lower_the_help_share_but_not_raise_it(tmp_path):
    client, model, _ = _client(tmp_path, knob_default_tau=0.5, knob_gain=0.0)
    with client:
        client.post("/v1/answer", json=HARD)
        client.post("/v1/answer", json=EASY)
        low = client.post("/v1/answer", json={**HARD, "options": {"max_help_share": 0.0}}).json()
        assert low["route"] == "local" and low["answer"] == "5"  # target 0: nobody asks
        high = client.post("/v1/answer", json={**EASY, "options": {"max_help_share": 1.0}}).json()
    # tau is 0.3 from the gateway: a share of 1.0 does not raise it, the easy query stays local
    assert high["route"] == "local" and high["help_bias"] < 1.0


def test_calibration_file_seeds_the_scores(tmp_path):
    cal = tmp_path / "help_bias.json"
    cal.write_text(json.dumps({"math": {"val_scores": [2.0, 0.5, -0.5, -2.0]}}))
    knobs = HelpKnobs(default_tau=0.25, gain=0.0, window=8, calibration=load_calibration(str(cal), None))
    assert knobs.bias("math") == pytest.approx(-1.25)  # k = 1: halfway between 2.0 and 0.5
    knobs.on_telemetry("math", telemetry("math", ratio=0.5, tau=0.5))
    assert knobs.bias("math") == pytest.approx(0.0)  # tau 0.5 -> k = 2: between 0.5 and -0.5
    assert knobs.bias("math", cap=0.25) == pytest.approx(-1.25)
    with pytest.raises(FileNotFoundError):
        load_calibration(str(tmp_path / "missing.json"), None)
    run = tmp_path / "run"
    run.mkdir()
    (run / "help_bias.json").write_text(cal.read_text())
    assert load_calibration("", str(run)) == json.loads(cal.read_text())


def test_integral_feedback_lowers_the_target_when_the_gateway_measures_too_much():
    knobs = HelpKnobs(default_tau=0.5, gain=0.5, window=8)
    for s in (2.0, 0.5, -0.5, -2.0):
        knobs.observe_score("math", s)
    knobs.on_telemetry("math", telemetry("math", ratio=0.9, tau=0.5))  # integral 0.5*(0.5-0.9) = -0.2
    assert knobs.controller("math").tau_eff == pytest.approx(0.3)
    assert knobs.bias("math") == pytest.approx(-1.25)  # round(0.3 * 4) = 1 asks


def _chat(client, question, **dagrpo):
    return client.post("/v1/chat/completions", json={
        "model": "dagrpo-math", "stream": True, "messages": [{"role": "user", "content": question}],
        "dagrpo": dagrpo}).text


def test_the_streaming_chat_path_uses_the_same_bias_and_feeds_the_same_scores(tmp_path):
    client, model, _ = _client(tmp_path, knob_default_tau=0.5, knob_gain=0.0)
    with client:
        client.post("/v1/answer", json=HARD)
        client.post("/v1/answer", json=EASY)
        bias = client.get("/v1/budget").json()["tasks"]["math"]["knob"]["bias"]
        streamed = _chat(client, HARD["question"])
        capped = _chat(client, HARD["question"], max_help_share=0.0)
        knob = client.get("/v1/budget").json()["tasks"]["math"]["knob"]
    assert model.biases[2] == pytest.approx(bias)  # the streamed answer decoded at the task's bias
    assert '"route": "cloud"' in streamed and f'"help_bias": {bias}' in streamed
    assert model.biases[3] < -1.0 and '"route": "local"' in capped  # a lower cap, on the stream too
    assert knob["scores_seen"] == 4  # both streamed answers' scores joined the window


def test_a_queued_answer_decodes_with_the_bias_in_force_when_its_decode_starts(tmp_path):
    """The gateway's tau changes while an answer waits behind another: it decodes with the new bias."""
    import threading

    cal = tmp_path / "help_bias.json"
    cal.write_text(json.dumps({"math": {"val_scores": [4.5 - i for i in range(10)]}}))
    client, model, _ = _client(tmp_path, knob_default_tau=0.1, knob_gain=0.0, help_bias_file=str(cal))
    with client:
        model.gate = threading.Event()
        replies = {}
        first = threading.Thread(target=lambda: replies.update(a=client.post("/v1/answer", json=EASY).json()))
        first.start()
        assert model.entered.wait(10)  # the first answer holds the model thread
        second = threading.Thread(target=lambda: replies.update(b=client.post("/v1/answer", json=EASY).json()))
        second.start()
        time.sleep(0.3)  # the second request is queued behind it
        client.app.state.service.knobs.on_telemetry("math", telemetry("math", ratio=0.0, tau=0.9))
        model.gate.set()
        first.join(10)
        second.join(10)
    assert replies["a"]["help_bias"] < -2.0  # tau 0.1: ask on the top tenth of the scores
    assert replies["b"]["help_bias"] > 2.0 and replies["b"]["route"] == "cloud"  # tau 0.9, set while it waited
