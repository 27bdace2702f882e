"""The help knob on the streaming chat path, with the real model: SmolLM2 + a help-trained LoRA
(the `help_run` fixture) through llama.cpp. The same questions go once through `POST /v1/answer`
and once through `POST /v1/chat/completions` with `stream: true`, each from a fresh knob (so both
passes start from the same state); greedy, the two must take the same bias at every answer and
agree on whether it asks, token for token in the local part."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 12  # questions per pass
MAX_TOKENS = 40


def _sse(text: str) -> tuple[str, dict]:
    """(streamed content, the last chunk's `dagrpo` field) of one chat completion stream."""
    content, ext = "", None
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: "):])
        for choice in chunk.get("choices", []):
            content += choice["delta"].get("content") or ""
        ext = chunk.get("dagrpo", ext)
    assert ext is not None, text[-500:]
    return content, ext


def test_a_streamed_answer_asks_under_the_same_bias_as_a_plain_one(tmp_path, help_run):
    from collab.tasks import get_task
    from edge_agent.api import create_app
    from edge_agent.knob import HelpKnobs
    from edge_agent.settings import EdgeSettings

    settings = EdgeSettings(adapter_path=str(help_run), outbox_path=str(tmp_path / "usage.sqlite"),
                            flush_interval_s=3600, threads=1, n_ctx=1024, help_knob=True,
                            knob_default_tau=0.3, fallback_reanswer=False)
    examples = get_task("math").examples("test", n=N, seed=5)
    plain, streamed = [], []
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        for ex in examples:
            r = client.post("/v1/answer", json={"task": "math", "question": ex.question,
                                                "options": {"max_tokens": MAX_TOKENS}})
            assert r.status_code == 200, r.text
            plain.append(r.json())
        service.knobs = HelpKnobs.from_settings(settings, settings.adapter_path)  # the second pass starts afresh
        for ex in examples:
            r = client.post("/v1/chat/completions", json={
                "model": "dagrpo-math", "stream": True, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": ex.question}]})
            assert r.status_code == 200, r.text
            streamed.append(_sse(r.text))
    asked = [a["requested_help"] for a in plain]
    print(f"asked on {sum(asked)}/{N}; biases {[round(a['help_bias'], 3) for a in plain]}")
    assert any(asked) and not all(asked), "the knob at tau 0.3 should ask on some of the questions, not all"
    for a, (content, ext) in zip(plain, streamed):
        assert ext["help_bias"] == a["help_bias"]
        assert ext["requested_help"] == a["requested_help"]
        assert content == a["local_part"]  # the trigger is never shown; the local tokens are the same
