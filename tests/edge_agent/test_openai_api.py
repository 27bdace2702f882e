"""The OpenAI-compatible endpoints with a fake model and a fake cloud, through the real `openai`
client (over the app's TestClient); the real model and gateway are in test_openai_integration.py."""

import openai
import pytest
from fastapi.testclient import TestClient

from collab.protocol import HELP_TRIGGER
from edge_agent.api import create_app
from edge_agent.openai_api import finish_reason, usage
from edge_agent.service import Answer
from edge_agent.settings import EdgeSettings
from edge_agent.streaming import visible_len
from edge_fakes import CLOUD_TEXT, HELP_TEXT, LOCAL_TEXT, FakeCloud, FakeModel

LOCAL_PART = HELP_TEXT[:-len(HELP_TRIGGER)]
HARD = [{"role": "user", "content": "HARD: integrate x^x"}]
EASY = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2 + 2?"}]


@pytest.mark.parametrize("text, n", [
    ("", 0), ("abc", 3), ("abc I", 4), ("abc I ne", 4), ("Iceberg", 7), ("x\nI need", 2),
    ("ab" + HELP_TRIGGER + " more", 2), ("I need external assistance", 0),
])
def test_visible_len_holds_back_what_may_become_the_trigger(text, n):
    assert visible_len(text) == n


def _answer(route, reason=None, finish="help"):
    return Answer(task="math", route=route, answer=None, text="", local_part="", cloud_part=None,
                  requested_help=route != "local", cloud_used=route == "cloud", cloud_skipped_reason=reason,
                  telemetry=None, prompt_tokens=100, completion_tokens=12, cloud_prompt_tokens=50,
                  cloud_completion_tokens=15 if route == "cloud" else 0, finish_reason=finish, latency_s=0.1)


def test_finish_reason_and_usage():
    assert finish_reason(_answer("local", finish="length")) == "length"
    assert finish_reason(_answer("cloud")) == "stop"
    assert finish_reason(_answer("fallback", "budget_exhausted")) == "cloud_budget_exhausted"
    assert usage(_answer("cloud")) == {"prompt_tokens": 100, "completion_tokens": 27, "total_tokens": 127}


@pytest.fixture
def agent(tmp_path):
    def make(cloud="ok"):
        cloud = FakeCloud(cloud) if cloud else None
        s = EdgeSettings(outbox_path=str(tmp_path / "usage.sqlite"), flush_interval_s=3600)
        test_client = TestClient(create_app(s, model=FakeModel(), cloud=cloud))
        test_client.__enter__()
        made.append(test_client)
        return openai.OpenAI(base_url="http://testserver/v1", api_key="none", http_client=test_client,
                             max_retries=0), test_client, cloud

    made = []
    yield make
    for c in made:
        c.__exit__(None, None, None)


def _stream(client, messages, **kw):
    chunks = list(client.chat.completions.create(model="dagrpo-math", messages=messages, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_models_and_a_local_answer(agent):
    client, test_client, cloud = agent()
    assert "dagrpo-math" in [m.id for m in client.models.list()]
    r = client.chat.completions.create(model="dagrpo-math", messages=EASY)
    assert r.choices[0].message.content == LOCAL_TEXT and r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (100, 20)
    assert r.dagrpo["route"] == "local" and r.dagrpo["ignored_messages"] == 1 and r.dagrpo["answer"] == "4"
    assert cloud.assist_keys == [] and test_client.app.state.service.outbox.totals() == {"math": (1, 0)}


def test_a_streamed_help_answer_switches_to_the_cloud_and_never_shows_the_trigger(agent):
    client, test_client, cloud = agent()
    text, chunks = _stream(client, HARD, stream_options={"include_usage": True})
    assert text == LOCAL_PART + CLOUD_TEXT and HELP_TRIGGER not in text
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop" and last.dagrpo["route"] == "cloud"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12 + 15
    assert len(cloud.assist_keys) == 1 and test_client.app.state.service.outbox.totals() == {"math": (1, 1)}


def test_stream_and_non_stream_give_the_same_content(agent):
    client, _, _ = agent()
    text, _ = _stream(client, HARD)
    r = client.chat.completions.create(model="dagrpo-math", messages=HARD)
    assert r.choices[0].message.content == text and r.dagrpo["cloud_used"]


@pytest.mark.parametrize("mode, extra, finish, offline", [
    ("refuse", {}, "cloud_budget_exhausted", 0),
    ("down", {}, "cloud_unavailable", 1),
    ("ok", {"extra_body": {"dagrpo": {"allow_cloud": False}}}, "cloud_disabled", 1),
    ("break", {}, "cloud_interrupted", 0),
])
def test_help_the_cloud_does_not_serve_ends_the_stream_cleanly(agent, mode, extra, finish, offline):
    client, test_client, _ = agent(mode)
    text, chunks = _stream(client, HARD, **extra)
    assert text == LOCAL_PART + (CLOUD_TEXT[:5] if mode == "break" else "")
    assert chunks[-1].choices[0].finish_reason == finish and chunks[-1].dagrpo["route"] == "fallback"
    outbox = test_client.app.state.service.outbox
    assert outbox.totals() == {"math": (1, 1)}
    assert outbox._db.execute("SELECT SUM(offline_help) FROM usage").fetchone()[0] == offline


def test_errors_have_the_openai_shape(agent):
    client, test_client, _ = agent()
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=EASY)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="top_p"):
        client.chat.completions.create(model="dagrpo-math", messages=EASY, top_p=0.5)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="dagrpo-math", messages=[{"role": "user", "content": "OVERFLOW"}],
                                       stream=True)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="dagrpo-math", messages=[*EASY, {"role": "assistant", "content": "4"}])
    r = test_client.post("/v1/chat/completions", json={"model": "dagrpo-math"})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert test_client.post("/v1/answer", json={}).status_code == 422  # /v1/answer keeps its own shape
    assert test_client.app.state.service.outbox.totals() == {}
