"""The vLLM recipe on a GPU: deploy/vllm/serve.sh + the gateway's openai backend, one Assist.

Skipped without CUDA (the `gpu` marker), without vLLM installed, or without VLLM_MODEL (a local
model directory). Nothing here imports vllm: the server runs as a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
import urllib.request

import pytest

from .conftest import free_port


@pytest.mark.gpu
@pytest.mark.integration
@pytest.mark.slow
def test_vllm_recipe_serves_the_gateway(repo_root, tmp_path, keys):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (pip install vllm on the GPU machine)")
    model = os.environ.get("VLLM_MODEL")
    if not model:
        pytest.skip("set VLLM_MODEL to a local model directory")
    from collab.prompts import build_messages
    from collab.tasks import get_example
    from collab.gateway_client import GatewayCloud
    from cloud_gateway.config import load_settings
    from cloud_gateway.server import EmbeddedGateway

    port = free_port()
    log = open(tmp_path / "vllm.log", "wb")
    proc = subprocess.Popen(["bash", str(repo_root / "deploy/vllm/serve.sh")], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MODEL": model, "PORT": str(port)})
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                time.sleep(2)
        settings = load_settings(port=0, metrics_port=-1, keys_file=keys.path, sqlite_path=tmp_path / "v.db",
                                 backend="openai", openai_base_url=f"http://127.0.0.1:{port}/v1",
                                 openai_model="cloud", openai_max_tokens=64)
        ex = get_example("math/test/0")
        with EmbeddedGateway(settings) as gw, GatewayCloud(gw.address, keys.d1, timeout_s=120) as cloud:
            reply = cloud.assist(ex, build_messages(ex.kind, ex.question), idempotency_key="v1")
        assert reply.completion.strip() and reply.completion_tokens > 0
    finally:
        proc.terminate()
        proc.wait(60)
