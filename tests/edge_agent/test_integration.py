"""The edge agent end to end: the real SmolLM2 GGUF through llama.cpp, a real gateway (gRPC on
loopback, SQLite store, reference backend), the durable outbox across an outage and a restart.

One module-scoped model and one gateway; the tests run in order and share the gateway's budget:
math has burst 1 and tau 0 (enforce), so exactly one Assist is granted.
"""

import time

import pytest
from fastapi.testclient import TestClient

from collab.protocol import HELP_TRIGGER, compose
from collab.reference import reference_completion
from collab.tasks import get_task
from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings

pytestmark = pytest.mark.integration

KEY = "dgk_edge-integration-test-key"
LOCAL_Q = "What is 2 + 3?"
# Greedy SmolLM2 repeats the trigger: a deterministic help request from the real model.
HELP_Q = f"Repeat after me: {HELP_TRIGGER}"


@pytest.fixture(scope="module")
def model():
    from llama_runtime.llm import LocalModel

    # one thread: llama.cpp's thread barrier collapses when a 2-core box is shared
    return LocalModel(EdgeSettings().model_path, n_ctx=1024, threads=1)


class Gateway:
    """An embedded gateway that can be stopped and started again on the same port and store."""

    def __init__(self, tmp):
        from cloud_gateway.auth import hash_key
        from cloud_gateway.config import GatewaySettings, TaskBudget

        keys = tmp / "keys.toml"
        keys.write_text(f'[devices]\nedge-1 = "{hash_key(KEY)}"\n')
        self.settings = GatewaySettings(
            port=_free_port(), metrics_port=-1, keys_file=keys, sqlite_path=tmp / "gw.db",
            reference_accuracy=1.0, grace_s=0.5,
            tasks={"math": TaskBudget(tau=0.0, mode="enforce", burst=1.0)})
        self.server = None

    @property
    def address(self):
        return f"127.0.0.1:{self.settings.port}"

    def start(self):
        from cloud_gateway.server import EmbeddedGateway

        self.server = EmbeddedGateway(self.settings).__enter__()

    def stop(self):
        self.server.__exit__(None, None, None)
        self.server = None


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"))
    gw.start()
    yield gw
    if gw.server is not None:
        gw.stop()


@pytest.fixture(scope="module")
def outbox_path(tmp_path_factory):
    return str(tmp_path_factory.mktemp("agent") / "usage.sqlite")


def _agent(model, gateway, outbox_path):
    from collab.gateway_client import GatewayCloud

    settings = EdgeSettings(gateway=gateway.address, api_key=KEY, outbox_path=outbox_path,
                            flush_interval_s=3600, n_ctx=1024)
    cloud = GatewayCloud(gateway.address, KEY, timeout_s=5, retries=1, backoff_s=0.05)
    return TestClient(create_app(settings, model=model, cloud=cloud))


def _ask(client, question, **extra):
    body = {"task": "math", "question": question, "options": {"max_tokens": 24}, **extra}
    r = client.post("/v1/answer", json=body)
    assert r.status_code == 200, r.text
    return r.json()


EXAMPLE = get_task("math").examples("test", 1)[0]
SERVED = {"answers": 0, "help": 0}  # what this module's agents served, for the usage check


def _count(a):
    SERVED["answers"] += 1
    SERVED["help"] += a["requested_help"]


def test_local_answer(model, gateway, outbox_path):
    with _agent(model, gateway, outbox_path) as client:
        a = _ask(client, LOCAL_Q)
    _count(a)
    assert (a["route"], a["cloud_used"], a["cloud_skipped_reason"]) == ("local", False, "not_requested")
    assert a["completion_tokens"] > 0 and a["text"] and HELP_TRIGGER not in a["text"]


def test_help_answer_is_composed_with_the_cloud_completion(model, gateway, outbox_path):
    with _agent(model, gateway, outbox_path) as client:
        a = _ask(client, HELP_Q, example_id=EXAMPLE.id)
    _count(a)
    assert (a["route"], a["cloud_used"], a["finish_reason"]) == ("cloud", True, "help")
    assert a["cloud_part"] == reference_completion(EXAMPLE)
    assert a["text"] == compose(a["local_part"] + HELP_TRIGGER, a["cloud_part"])
    assert a["answer"] == EXAMPLE.answer
    assert a["telemetry"]["mode"] == "enforce" and a["cloud_completion_tokens"] > 0


def test_budget_exhausted_answers_locally(model, gateway, outbox_path):
    with _agent(model, gateway, outbox_path) as client:
        a = _ask(client, HELP_Q, example_id=EXAMPLE.id)
    _count(a)
    assert (a["route"], a["cloud_skipped_reason"]) == ("fallback", "budget_exhausted")
    assert a["text"].endswith(HELP_TRIGGER) and a["telemetry"]["credit"] < 1


def test_gateway_down_then_back_loses_no_usage_across_an_agent_restart(model, gateway, outbox_path):
    gateway.stop()
    with _agent(model, gateway, outbox_path) as client:
        down = _ask(client, HELP_Q, example_id=EXAMPLE.id)
        local = _ask(client, LOCAL_Q)
    for a in (down, local):
        _count(a)
    assert (down["route"], down["cloud_skipped_reason"]) == ("fallback", "unavailable")
    assert local["route"] == "local"

    gateway.start()  # same port, same store; a new agent on the same outbox file
    with _agent(model, gateway, outbox_path) as client:
        service = client.app.state.service
        assert service.outbox.pending() >= 2  # the outage's rows survived the restart
        deadline = time.time() + 30  # the gRPC channel reconnects with backoff
        while service.flush_usage() and time.time() < deadline:
            time.sleep(0.5)
        assert service.outbox.pending() == 0
        t = service.cloud.budget("math")
    assert (t.responses, t.help_requests) == (SERVED["answers"], SERVED["help"])
    assert SERVED == {"answers": 5, "help": 3}


def test_hot_swap_under_concurrent_requests_loses_none(model, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from collab.prompts import build_messages
    from edge_adapters import write_random_adapter
    from llama_runtime.export import export_adapter

    adapters = [str(export_adapter(write_random_adapter(tmp_path / f"a{i}", seed=i, b_std=0.05),
                                   model.model_path, tmp_path / f"a{i}.gguf")) for i in range(2)]
    settings = EdgeSettings(outbox_path=str(tmp_path / "usage.sqlite"), n_ctx=1024, queue_size=32)
    body = {"task": "math", "question": LOCAL_Q, "options": {"max_tokens": 8, "allow_cloud": False}}
    with TestClient(create_app(settings, model=model)) as client, ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(client.post, "/v1/answer", json=body) for _ in range(8)]
        swaps = [pool.submit(client.post, "/v1/adapter", json={"path": p})
                 for p in (adapters[0], None, adapters[1])]
        assert [f.result().status_code for f in answers + swaps] == [200] * 11
        last = client.post("/v1/adapter", json={"path": adapters[0]}).json()["adapter"]
        after = client.post("/v1/answer", json=body).json()
        metrics = client.get("/metrics").text
    assert last["path"] == adapters[0] and "edge_adapter_swaps_total 4.0" in metrics
    # the answer after the swap is the adapter's answer, not the base model's
    direct = model.generate(build_messages("math", LOCAL_Q), max_tokens=8)
    model.set_adapter(None)
    base = model.generate(build_messages("math", LOCAL_Q), max_tokens=8)
    assert after["text"] == direct.text != base.text


def test_adapter_given_at_start_is_exported_and_reports_the_runs_lambda(tmp_path):
    """`dagrpo edge serve --adapter RUN_DIR`: the lifespan builds the real model with the run's
    adapter and reports the run's lambda, as a later POST /v1/adapter would."""
    import json

    from edge_adapters import write_random_adapter

    write_random_adapter(tmp_path / "run" / "adapter", seed=3, r=2)
    (tmp_path / "run" / "state.json").write_text(json.dumps({"lambda": 0.625, "step": 7}))
    settings = EdgeSettings(outbox_path=str(tmp_path / "usage.sqlite"), n_ctx=1024, threads=1,
                            adapter_path=str(tmp_path / "run"))
    with TestClient(create_app(settings, connect_cloud=False)) as client:
        adapter = client.get("/v1/adapter").json()
        metrics = client.get("/metrics").text
    assert adapter["adapter"]["lambda"] == 0.625
    assert adapter["adapter"]["path"] == str(tmp_path / "run" / "adapter" / "adapter.gguf")
    assert "edge_lambda 0.625" in metrics
