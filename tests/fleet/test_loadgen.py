"""The load generator's open loop, against a stub agent (a stdlib HTTP server answering JSON):
a unit test of the schedule and round robin, not of the agent."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.loadgen import Agent, main, resolve_agents, run_load

REPLY = {"route": "cloud", "requested_help": True, "cloud_skipped_reason": None,
         "telemetry": {"tau": 0.25}}


class StubAgent(BaseHTTPRequestHandler):
    seen: list = []
    auth: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubAgent.seen.append((self.server.server_port, body["task"]))
        StubAgent.auth.append(self.headers.get("Authorization"))
        data = json.dumps(REPLY).encode()
        self.send_response(503 if body["task"] == "busy" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_agents():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), StubAgent) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    StubAgent.seen, StubAgent.auth = [], []
    yield [Agent(f"d{i}", f"http://127.0.0.1:{s.server_port}") for i, s in enumerate(servers)]
    for s in servers:
        s.shutdown()
        s.server_close()


def test_open_loop_sends_rate_times_duration_round_robin(stub_agents):
    bodies = [{"task": "math"}, {"task": "science"}, {"task": "busy"}]
    outcomes = []
    sent = asyncio.run(run_load(stub_agents, bodies, rate=20, duration_s=0.6,
                                on_outcome=outcomes.append))
    assert sent == 12  # requests due at 0, 0.05, ..., 0.55 s
    assert len(outcomes) == 12
    ports = [p for p, _ in StubAgent.seen]
    assert ports.count(ports[0]) == 6  # two agents, alternately
    by_task = {o.task: o for o in outcomes}
    assert by_task["math"].status == "cloud" and by_task["math"].tau == 0.25
    assert by_task["busy"].status == "rejected" and not by_task["busy"].requested_help
    assert sorted(o.device for o in outcomes) == ["d0"] * 6 + ["d1"] * 6


def test_a_stop_event_ends_an_endless_load(stub_agents):
    async def go():
        stop, outcomes = asyncio.Event(), []

        def on_outcome(o):
            outcomes.append(o)
            if len(outcomes) == 3:
                stop.set()

        return await run_load(stub_agents, [{"task": "math"}], 10, 0, on_outcome, stop)

    assert 3 <= asyncio.run(go()) <= 5  # the 3 answered, maybe one or two in flight


def test_unreachable_agents_are_errors_not_crashes():
    outcomes = []
    asyncio.run(run_load([Agent("gone", "http://127.0.0.1:9")], [{"task": "math"}], 10, 0.15,
                         outcomes.append))
    assert [o.status for o in outcomes] == ["error", "error"]


def test_resolve_finds_every_address_of_a_name():
    assert resolve_agents("localhost:8080") == [Agent("localhost-127.0.0.1", "http://127.0.0.1:8080")]


def test_standalone_needs_an_agent():
    with pytest.raises(SystemExit, match="no agents"):
        main(["--rate", "1"])


def test_the_agents_client_key_goes_with_every_request(stub_agents):
    asyncio.run(run_load(stub_agents, [{"task": "math"}], rate=50, duration_s=0.1, on_outcome=lambda o: None,
                         api_key="dek_abc"))
    assert StubAgent.auth and set(StubAgent.auth) == {"Bearer dek_abc"}
    asyncio.run(run_load(stub_agents, [{"task": "math"}], rate=50, duration_s=0.05, on_outcome=lambda o: None))
    assert StubAgent.auth[-1] is None  # no key: no header
