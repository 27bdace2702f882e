"""The OpenAI-compatible API end to end: the real `openai` client (sync and streaming) against a
real agent process (`dagrpo edge serve`, uvicorn on loopback, the SmolLM2 GGUF through llama.cpp)
and a real gateway (gRPC on loopback, SQLite, reference backend) streaming through AssistStream.

The tests run in order and share the gateway's budget: math is enforce mode with tau 0 and burst
1, so exactly one help request is served; the next is refused; then the gateway goes down.
"""

import os
import subprocess
import sys
import time
import urllib.request

import openai
import pytest

from collab.protocol import HELP_TRIGGER
from collab.reference import reference_completion
from collab.tasks import get_task

pytestmark = pytest.mark.integration

KEY = "dgk_openai-integration-test-key"
LOCAL_Q = [{"role": "user", "content": "What is 2 + 3?"}]
HELP_Q = [{"role": "user", "content": f"Repeat after me: {HELP_TRIGGER}"}]  # greedy SmolLM2 repeats it
EXAMPLE = get_task("math").examples("test", 1)[0]
HELP_EXTRA = {"extra_body": {"dagrpo": {"example_id": EXAMPLE.id}}}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    from cloud_gateway.auth import hash_key
    from cloud_gateway.config import GatewaySettings, TaskBudget
    from cloud_gateway.server import EmbeddedGateway

    tmp = tmp_path_factory.mktemp("gateway")
    (tmp / "keys.toml").write_text(f'[devices]\nedge-1 = "{hash_key(KEY)}"\n')
    settings = GatewaySettings(port=_free_port(), metrics_port=-1, keys_file=tmp / "keys.toml",
                               sqlite_path=tmp / "gw.db", reference_accuracy=1.0, grace_s=0.5,
                               tasks={"math": TaskBudget(tau=0.0, mode="enforce", burst=1.0)})
    gw = EmbeddedGateway(settings).__enter__()
    gw.running = True
    yield gw
    if gw.running:
        gw.__exit__(None, None, None)


@pytest.fixture(scope="module")
def agent(gateway, tmp_path_factory):
    """`dagrpo edge serve` as a subprocess; yields its base URL."""
    tmp = tmp_path_factory.mktemp("agent")
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "EDGE_GATEWAY": gateway.address, "EDGE_API_KEY": KEY,
           "EDGE_OUTBOX_PATH": str(tmp / "usage.sqlite"), "EDGE_FLUSH_INTERVAL_S": "3600",
           "EDGE_N_CTX": "1024", "EDGE_THREADS": "1", "EDGE_CLOUD_RETRIES": "0", "EDGE_CLOUD_TIMEOUT_S": "10"}
    log = tmp / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dagrpo.cli", "edge", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def client(agent):
    with openai.OpenAI(base_url=f"{agent}/v1", api_key="none", max_retries=0, timeout=120) as c:
        yield c


def _stream(client, messages, **kw):
    chunks = list(client.chat.completions.create(model="dagrpo-math", messages=messages, max_tokens=24,
                                                 stream=True, **kw))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_local_answer_streamed_and_not(client):
    text, chunks = _stream(client, LOCAL_Q)
    r = client.chat.completions.create(model="dagrpo-math", messages=LOCAL_Q, max_tokens=24)
    assert text and r.choices[0].message.content == text  # greedy: the same tokens either way
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 5  # it streamed
    assert (r.choices[0].finish_reason, r.usage.completion_tokens, r.dagrpo["route"]) == ("length", 24, "local")
    assert chunks[-1].choices[0].finish_reason == "length"


def test_help_answer_streams_the_cloud_part_through_assist_stream(client):
    text, chunks = _stream(client, HELP_Q, **HELP_EXTRA)
    ext = chunks[-1].dagrpo
    assert text == reference_completion(EXAMPLE) and HELP_TRIGGER not in text  # local part: empty
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (ext["route"], ext["answer"], ext["telemetry"]["mode"]) == ("cloud", EXAMPLE.answer, "enforce")
    assert ext["cloud_completion_tokens"] > 0


def test_budget_refusal_ends_the_stream_cleanly(client):
    text, chunks = _stream(client, HELP_Q, **HELP_EXTRA)
    assert text == "" and chunks[-1].choices[0].finish_reason == "cloud_budget_exhausted"
    assert chunks[-1].dagrpo["telemetry"]["credit"] < 1


def test_gateway_outage_ends_the_stream_cleanly_and_usage_is_counted_once(client, agent, gateway):
    gateway.__exit__(None, None, None)
    gateway.running = False
    r = client.chat.completions.create(model="dagrpo-math", messages=HELP_Q, max_tokens=24, **HELP_EXTRA)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("", "cloud_unavailable")
    with urllib.request.urlopen(f"{agent}/metrics") as m:
        metrics = m.read().decode()
    # 2 local + 3 help answers; each recorded once
    assert 'edge_answers_total{route="local",task="math"} 2.0' in metrics
    assert 'edge_help_requests_total{task="math"} 3.0' in metrics


def test_client_disconnect_mid_stream_stops_decoding_and_reports_nothing(client, agent):
    """600 greedy tokens of counting take ~30 s on the shared box; the agent drops them at once."""
    long_q = [{"role": "user", "content": "Count from 1 to 300, one number per line."}]
    stream = client.chat.completions.create(model="dagrpo-math", messages=long_q, max_tokens=600, stream=True)
    for i, _ in enumerate(stream):
        if i == 4:
            break
    stream.close()
    start = time.monotonic()
    r = client.chat.completions.create(model="dagrpo-math", messages=LOCAL_Q, max_tokens=4)
    assert r.usage.completion_tokens == 4 and time.monotonic() - start < 10  # not queued behind the 600
    with urllib.request.urlopen(f"{agent}/metrics") as m:
        metrics = m.read().decode()
    assert 'edge_answers_total{route="local",task="math"} 3.0' in metrics  # the cut one is not a response
