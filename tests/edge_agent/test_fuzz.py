"""Property/fuzz runs against the real agent (real SmolLM2 through llama.cpp, real HTTP on
loopback): no request, valid or not, may produce a 5xx.

1. schemathesis generates requests from the agent's own OpenAPI schema (every operation);
2. hypothesis targets /v1/answer with registered task names and arbitrary unicode questions and
   choices, which the schema-driven run rarely reaches (it mostly invents task names).
Generation is capped (max_tokens_limit=4) so each answered request costs one prefill.
"""

import json
import socket
import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings

pytestmark = pytest.mark.integration


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    from edge_agent.llm import LocalModel

    tmp = tmp_path_factory.mktemp("fuzz")
    s = EdgeSettings(port=_free_port(), outbox_path=str(tmp / "usage.sqlite"), n_ctx=1024,
                     max_tokens_limit=4, queue_size=64)
    model = LocalModel(s.model_path, n_ctx=s.n_ctx, threads=1)
    server = uvicorn.Server(uvicorn.Config(create_app(s, model=model), host="127.0.0.1",
                                           port=s.port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{s.port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def api_schema(base_url):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_schema_driven_requests_never_5xx(case, base_url):
    case.call_and_validate(base_url=base_url, checks=[not_a_server_error])


TASKS = st.sampled_from(["math", "science", "code", "knowledge", "humaneval"])


@given(task=TASKS, question=st.text(min_size=0, max_size=300),
       choices=st.lists(st.text(max_size=40), max_size=4),
       options=st.fixed_dictionaries({}, optional={
           "max_tokens": st.integers(-2, 6), "temperature": st.floats(-1, 3, allow_nan=False),
           "allow_cloud": st.booleans(), "seed": st.integers(-1, 2**32)}))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_unicode_questions_on_real_tasks_never_5xx(base_url, task, question, choices, options):
    body = json.dumps({"task": task, "question": question, "choices": choices,
                       "options": options})
    r = httpx.post(f"{base_url}/v1/answer", content=body.encode("utf-8", "surrogatepass"),
                   headers={"content-type": "application/json"}, timeout=120)
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert r.json()["completion_tokens"] <= 4
