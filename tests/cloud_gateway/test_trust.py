"""Issue 22, items 4, 5 and 7: what a device key can do to the gateway, each an exploit turned test.

A real gateway on loopback over gRPC, on real SQLite and real Redis; a real `dagrpo gateway
serve` process for the key reloads. docs/security.md ("The gateway's trust model") maps each
test to what it enforces.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc
from .conftest import free_port

pytestmark = pytest.mark.integration
EX = "math/test/3"


def md(key):
    return (("authorization", f"Bearer {key}"),)


def assist_req(key, task="math", example_id=EX, content="What is 2+2?", **kw):
    return pb.AssistRequest(task=task, example_id=example_id, idempotency_key=key,
                            messages=[pb.ChatMessage(role="user", content=content)], **kw)


def code_of(fn, req, key):
    with pytest.raises(grpc.RpcError) as info:
        fn(req, metadata=md(key), timeout=10)
    return info.value.code(), info.value.details()


def make_settings(tmp_path, keys, store: str, request, **overrides):
    from cloud_gateway.config import load_settings

    where = ({"redis_url": request.getfixturevalue("redis_server").url} if store == "redis"
             else {"sqlite_path": tmp_path / "trust.db"})
    return load_settings(port=0, metrics_port=0, keys_file=keys.path, reference_accuracy=1.0, grace_s=2.0,
                         **where, **overrides)


class Running:
    """An EmbeddedGateway with stubs for its two services."""

    def __init__(self, settings):
        from cloud_gateway.server import EmbeddedGateway

        self.gw = EmbeddedGateway(settings)

    def __enter__(self):
        self.gw.__enter__()
        self.channel = grpc.insecure_channel(self.gw.address)
        self.device = pb_grpc.CloudGatewayStub(self.channel)
        self.admin = pb_grpc.GatewayAdminStub(self.channel)
        return self

    def __exit__(self, *exc):
        self.channel.close()
        self.gw.__exit__(*exc)


@pytest.fixture(params=["sqlite", "redis"])
def store(request):
    return request.param


def set_tau(run, admin_key, task, schedule, mode, burst=0.0):
    run.admin.SetTau(pb.SetTauRequest(task=task, schedule=[pb.TauStep(from_responses=s, tau=t) for s, t in schedule],
                                      mode=mode, burst=burst), metadata=md(admin_key), timeout=10)


def report(run, key, idem, responses, help_requests=0, task="math"):
    return run.device.ReportUsage(pb.ReportUsageRequest(task=task, responses=responses, help_requests=help_requests,
                                                        idempotency_key=idem), metadata=md(key), timeout=10).telemetry


def try_assist(run, key, idem, **kw) -> bool:
    try:
        run.device.Assist(assist_req(idem, **kw), metadata=md(key), timeout=10)
        return True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        return False


# -- item 4: a device cannot mint credit ----------------------------------------------------------
def test_a_huge_report_does_not_mint_credit(store, request, tmp_path, keys, caplog):
    """Exploit: ReportUsage(responses=10**9, help_requests=0) refilled credit to the cap, so
    alternating it with Assist gave unlimited cloud calls. Now a report is believed only up to the
    claim bucket (8 responses here, 1 more per second): credit grows by tau * 8 at most."""
    limits = {"responses_per_s": 1.0, "responses_burst": 8, "assists_per_s": 1000.0, "assists_burst": 1000}
    with Running(make_settings(tmp_path, keys, store, request, limits=limits)) as run, \
            caplog.at_level(logging.WARNING, logger="cloud_gateway"):
        set_tau(run, keys.admin, "math", [(0, 0.1)], pb.MODE_ENFORCE, burst=2.0)
        assert [try_assist(run, keys.d1, f"a{i}") for i in range(3)] == [True, True, False]
        t = report(run, keys.d1, "r0", 10**9)
        assert (t.responses, t.flagged_reports, t.excess_responses) == (8, 1, 10**9 - 8)
        assert t.credit == pytest.approx(0.8)  # 8 * 0.1, not the cap
        assert t.report_ratio == 0.0
        allowed = 0
        for i in range(20):  # the exploit's loop
            report(run, keys.d1, f"r{i + 1}", 10**9)
            allowed += try_assist(run, keys.d1, f"b{i}")
        t = run.device.GetBudget(pb.GetBudgetRequest(task="math"), metadata=md(keys.d1), timeout=10).telemetry
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{run.gw.server.metrics_port}/metrics").read().decode()
    # Over the loop's few seconds the bucket refills a few responses: at most one more credit.
    assert allowed <= 1 and t.cloud_calls == 2 + allowed and t.flagged_reports == 21
    assert t.responses < 8 + 30
    assert 'gateway_flagged_reports_total{task="math"} 21.0' in metrics
    claims = [r.getMessage() for r in caplog.records if r.getMessage().startswith("implausible claim")]
    assert "device d1 reported 1000000000 responses" in claims[0]
    assert len(claims) == 5  # the 1st, 2nd, 4th, 8th and 16th of 21 flagged reports: a flood stays short


def test_a_huge_report_does_not_jump_the_tau_schedule(store, request, tmp_path, keys):
    limits = {"responses_per_s": 1.0, "responses_burst": 50}
    with Running(make_settings(tmp_path, keys, store, request, limits=limits)) as run:
        set_tau(run, keys.admin, "math", [(0, 0.1), (100, 0.9)], pb.MODE_METER)
        t = report(run, keys.d1, "r0", 10**9)
        assert (t.tau, t.responses) == (pytest.approx(0.1), 50)
        t = report(run, keys.d2, "r0", 40)  # an honest device within its own bucket: all believed
        assert (t.responses, t.flagged_reports, t.excess_responses) == (40, 0, 0)


def test_cloud_calls_are_capped_per_time_whatever_the_reports(store, request, tmp_path, keys, monkeypatch, capsys):
    """Meter mode never refuses for credit; the cloud-call bucket still bounds a runaway key."""
    from dagrpo.cli import main

    limits = {"assists_per_s": 0.5, "assists_burst": 3}
    with Running(make_settings(tmp_path, keys, store, request, limits=limits)) as run:
        set_tau(run, keys.admin, "math", [(0, 1.0)], pb.MODE_METER)
        report(run, keys.d1, "r0", 1000)
        with pytest.raises(grpc.RpcError) as info:
            for i in range(10):
                run.device.Assist(assist_req(f"a{i}"), metadata=md(keys.d1), timeout=10)
        assert i == 3 and info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "cloud-call limit" in info.value.details()
        trailer = dict(info.value.trailing_metadata())["collab-telemetry-bin"]
        t = pb.Telemetry.FromString(trailer)
        assert (t.cloud_calls, t.throttled, t.denials) == (3, 1, 0)
        assert try_assist(run, keys.d2, "a0")  # another device has its own bucket
        monkeypatch.setenv("GATEWAY_ADMIN_KEY", keys.admin)
        capsys.readouterr()
        assert main(["gateway", "budgets", "--device", "d1", "--address", run.gw.address]) == 0
    header, row = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("device", "d1"))]
    assert dict(zip(header, row))["throttled"] == "1" and dict(zip(header, row))["flagged"] == "0"


# -- item 5: one device key cannot exhaust the store -----------------------------------------------
def dead_openai(tmp_path, keys, store, request, **kw):
    """An openai backend that accepts any example id (validate is a no-op) and is down: every
    Assist is decided and remembered, then fails UNAVAILABLE (what the exploit exploits)."""
    return make_settings(tmp_path, keys, store, request, backend="openai", openai_timeout_s=1, openai_retries=0,
                         openai_base_url=f"http://127.0.0.1:{free_port()}/v1", **kw)


def test_fields_and_messages_are_capped(store, request, tmp_path, keys):
    with Running(dead_openai(tmp_path, keys, store, request)) as run:
        code, msg = code_of(run.device.Assist, assist_req("k1", example_id="x" * 257), keys.d1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "example_id" in msg
        many = pb.AssistRequest(task="math", example_id=EX, idempotency_key="k2",
                                messages=[pb.ChatMessage(role="user", content="q")] * 65)
        code, msg = code_of(run.device.Assist, many, keys.d1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "messages" in msg
        # Over max_message_bytes (256 KiB): refused by gRPC before any handler (it was 4 MiB).
        big = pb.ReportUsageRequest(task="math", responses=1, idempotency_key="r", device="d" * 300_000)
        code, _ = code_of(run.device.ReportUsage, big, keys.d1)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        code, _ = code_of(run.device.Assist, assist_req("k3", content="y" * 40_000), keys.d1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT  # max_prompt_chars, unchanged


def test_an_oversized_cloud_completion_is_neither_served_nor_stored(tmp_path, keys, request):
    with Running(make_settings(tmp_path, keys, "sqlite", request, max_completion_chars=10)) as run:
        for stub in (run.device.Assist, lambda *a, **kw: list(run.device.AssistStream(*a, **kw))):
            code, msg = code_of(stub, assist_req("k1"), keys.d1)
            assert code == grpc.StatusCode.UNAVAILABLE and "cloud model" in msg
        t = run.device.GetBudget(pb.GetBudgetRequest(task="math"), metadata=md(keys.d1), timeout=10).telemetry
    assert (t.cloud_calls, t.tokens) == (1, 0)  # decided once (the retry replays it), no completion counted


def stored_text(store, request, tmp_path) -> bytes:
    if store == "sqlite":
        with sqlite3.connect(tmp_path / "trust.db") as db:
            return "".join(a for (a,) in db.execute("SELECT answer FROM idempotency")).encode()
    import redis

    r = redis.Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        return b"".join(r.get(k) or b"" for k in r.scan_iter("gw:*:i:*"))
    finally:
        r.close()


def test_remembered_answers_keep_a_digest_of_the_example_id(store, request, tmp_path, keys):
    example_id = "exploit-" + "z" * 240
    with Running(dead_openai(tmp_path, keys, store, request)) as run:
        code, _ = code_of(run.device.Assist, assist_req("k1", example_id=example_id), keys.d1)
        assert code == grpc.StatusCode.UNAVAILABLE  # decided and remembered, then the cloud failed
        code, msg = code_of(run.device.Assist, assist_req("k1", example_id="other"), keys.d1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "another example" in msg  # still compared
    text = stored_text(store, request, tmp_path)
    assert b'"op": "assist"' in text or b'"op":"assist"' in text
    assert b"exploit-" not in text


def test_each_device_has_a_rate_and_a_concurrency_limit(tmp_path, keys, request):
    limits = {"rpc_per_s": 0.5, "rpc_burst": 3}
    with Running(make_settings(tmp_path, keys, "sqlite", request, limits=limits)) as run:
        get = pb.GetBudgetRequest(task="math")
        codes = []
        for _ in range(5):
            try:
                run.device.GetBudget(get, metadata=md(keys.d1), timeout=10)
                codes.append("ok")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
                assert "calls/s" in exc.details()
        assert codes == ["ok"] * 3 + ["RESOURCE_EXHAUSTED"] * 2
        run.device.GetBudget(get, metadata=md(keys.d2), timeout=10)  # d2 has a bucket of its own
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{run.gw.server.metrics_port}/metrics").read().decode()
    assert 'gateway_throttled_rpcs_total{method="GetBudget"} 2.0' in metrics

    limits = {"rpc_concurrent": 2}
    settings = make_settings(tmp_path / "c", keys, "sqlite", request, limits=limits, reference_latency_s=0.5)
    with Running(settings) as run:
        async def burst():
            async with grpc.aio.insecure_channel(run.gw.address) as ch:
                stub = pb_grpc.CloudGatewayStub(ch)

                async def one(key, idem):
                    try:
                        await stub.Assist(assist_req(idem), metadata=md(key), timeout=10)
                        return "ok"
                    except grpc.aio.AioRpcError as exc:
                        return exc.code().name

                return await asyncio.gather(*[one(keys.d1, f"c{i}") for i in range(4)], one(keys.d2, "c0"))

        out = asyncio.run(burst())
    assert sorted(out[:4]) == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "ok", "ok"] and out[4] == "ok"


def test_the_client_backs_off_a_rate_limit_and_then_says_unavailable(tmp_path, keys, request):
    """A rate-limited call carries how long to wait; GatewayCloud waits that long and retries (the
    same key: metered once), and after its retries it is CloudUnavailable, not a raw RpcError."""
    from collab.cloud import CloudUnavailable
    from collab.gateway_client import GatewayCloud

    limits = {"rpc_per_s": 4.0, "rpc_burst": 1}
    with Running(make_settings(tmp_path, keys, "sqlite", request, limits=limits)) as run:
        with GatewayCloud(run.gw.address, keys.d1, retries=3, backoff_s=0.001) as cloud:
            t0 = time.monotonic()
            for _ in range(3):  # burst 1: the 2nd and 3rd wait ~0.25 s each for a token
                cloud.budget("math")
            assert time.monotonic() - t0 >= 0.4
        with GatewayCloud(run.gw.address, keys.d2, retries=0, backoff_s=0.001) as cloud:
            cloud.budget("math")
            with pytest.raises(CloudUnavailable, match="RESOURCE_EXHAUSTED"):
                cloud.budget("math")


def test_redis_at_maxmemory_refuses_writes_as_unavailable_and_keeps_counters(request, tmp_path, keys):
    """noeviction (docs/gateway.md): a full Redis refuses a metered call (UNAVAILABLE, retry with
    the same key), never evicts a budget counter."""
    import redis

    server = request.getfixturevalue("redis_server")
    with Running(make_settings(tmp_path, keys, "redis", request)) as run:
        report(run, keys.d1, "r1", 8)
        r = redis.Redis.from_url(server.url)
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        r.config_set("maxmemory", 1)  # far below what is used: every write is over
        try:
            code, msg = code_of(run.device.ReportUsage, pb.ReportUsageRequest(
                task="math", responses=8, idempotency_key="r2"), keys.d1)
            assert code == grpc.StatusCode.UNAVAILABLE and "retry" in msg
        finally:
            r.config_set("maxmemory", 256 * 1024 * 1024)
            r.close()
        assert report(run, keys.d1, "r2", 8).responses == 16


# -- item 7: keys and files ------------------------------------------------------------------------
def budget_code(address, key) -> str:
    with grpc.insecure_channel(address) as ch:
        try:
            pb_grpc.CloudGatewayStub(ch).GetBudget(pb.GetBudgetRequest(task="math"), metadata=md(key), timeout=10)
            return "ok"
        except grpc.RpcError as exc:
            return exc.code().name


def wait_for(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_sighup_reloads_the_keys_a_revoked_key_stops_working(gateway_process, keys, monkeypatch, tmp_path):
    from cloud_gateway.auth import add_key, revoke_key

    monkeypatch.setenv("GATEWAY_KEYS_POLL_S", "3600")  # only the signal reloads
    gw = gateway_process("--sqlite-path", str(tmp_path / "hup.db"))
    assert budget_code(gw.address, keys.d1) == "ok"
    assert revoke_key(keys.path, "d1")
    d3 = add_key(keys.path, "d3")
    assert budget_code(gw.address, keys.d1) == "ok"  # not yet: no signal, no poll
    gw.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: budget_code(gw.address, keys.d1) == "UNAUTHENTICATED")
    assert budget_code(gw.address, d3) == "ok" and budget_code(gw.address, keys.d2) == "ok"
    keys.path.write_text("[devices\nbroken")  # a broken file: logged, the keys in force stay
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert budget_code(gw.address, d3) == "ok" and gw.proc.poll() is None
    assert gw.terminate() == 0
    assert "not reloaded, the keys in force stay" in gw.log.read_text()


def test_a_changed_keys_file_is_reloaded_without_a_signal(gateway_process, keys, monkeypatch, tmp_path):
    from cloud_gateway.auth import revoke_key

    monkeypatch.setenv("GATEWAY_KEYS_POLL_S", "0.2")
    gw = gateway_process("--sqlite-path", str(tmp_path / "poll.db"))
    assert budget_code(gw.address, keys.d2) == "ok"
    revoke_key(keys.path, "d2")
    assert wait_for(lambda: budget_code(gw.address, keys.d2) == "UNAUTHENTICATED")
    assert budget_code(gw.address, keys.d1) == "ok"


@pytest.mark.usefixtures("wide_limits")
def test_workers_reload_their_keys_on_sighup(gateway_process, keys, monkeypatch, redis_server):
    from cloud_gateway.auth import revoke_key

    monkeypatch.setenv("GATEWAY_KEYS_POLL_S", "3600")
    gw = gateway_process("--redis-url", redis_server.url, "--workers", "2", "--log-level", "INFO")
    assert wait_for(lambda: gw.log.read_text().count("gateway on ") == 2, 30)  # both workers serve
    revoke_key(keys.path, "d1")
    gw.proc.send_signal(signal.SIGHUP)  # the parent forwards it to each worker
    time.sleep(1.0)
    own = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel: both workers get some
    codes = set()
    for _ in range(12):
        with grpc.insecure_channel(gw.address, options=own) as ch:
            try:
                pb_grpc.CloudGatewayStub(ch).GetBudget(pb.GetBudgetRequest(task="math"), metadata=md(keys.d1),
                                                       timeout=10)
                codes.add("ok")
            except grpc.RpcError as exc:
                codes.add(exc.code().name)
    assert codes == {"UNAUTHENTICATED"}
    assert gw.terminate() == 0


def test_keys_file_is_written_privately_through_a_fresh_temp_file(tmp_path):
    from cloud_gateway.auth import add_key

    victim = tmp_path / "victim"
    victim.write_text("untouched")
    path = tmp_path / "keys.toml"
    (tmp_path / "keys.tmp").symlink_to(victim)  # the old predictable temp path
    old = os.umask(0o022)
    try:
        add_key(path, "d1")
        add_key(path, "d2")
    finally:
        os.umask(old)
    assert victim.read_text() == "untouched"
    assert path.stat().st_mode & 0o777 == 0o600 and not path.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.tmp", "keys.toml", "victim"]  # no temp left


def test_the_keys_file_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    from cloud_gateway.auth import add_key

    victim = tmp_path / "victim"
    victim.write_text("untouched")
    path = tmp_path / "keys.toml"
    add_key(path, "d1")
    target = tmp_path / "elsewhere.toml"
    path.rename(target)
    path.symlink_to(target)
    add_key(path, "d2")
    assert not path.is_symlink() and "d2" in path.read_text() and "d2" not in target.read_text()


def test_the_sqlite_store_and_its_wal_are_owner_only(tmp_path):
    from collab import budget as b
    from cloud_gateway.store.sqlite import SqliteStore

    async def modes(path) -> dict[str, int]:
        """The modes of the store's files while it is open (closing removes the WAL and shm)."""
        store = SqliteStore(path, b.Limits(10**6, 10**6, 10**6, 10**6))
        try:
            await store.seed_policies({"math": b.Policy(((0, 300_000),))})
            await store.report("d", "math", 4, 1, "r")
            return {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir() if p.name.startswith(path.name)}
        finally:
            await store.close()

    loose = tmp_path / "loose.db"
    old = os.umask(0o022)
    try:
        fresh = asyncio.run(modes(tmp_path / "gw.db"))
        loose.touch(mode=0o644)
        tightened = asyncio.run(modes(loose))
    finally:
        os.umask(old)
    assert fresh == {"gw.db": 0o600, "gw.db-wal": 0o600, "gw.db-shm": 0o600}
    assert tightened == {"loose.db": 0o600, "loose.db-wal": 0o600, "loose.db-shm": 0o600}


def test_names_with_a_trailing_newline_are_not_names(gateway, keys):
    from cloud_gateway.auth import KeyRing, hash_key
    from cloud_gateway.store.base import NAME_RE

    assert NAME_RE.match("math") and not NAME_RE.match("math\n") and not NAME_RE.match("d1\n")
    with pytest.raises(ValueError, match="bad name"):
        KeyRing({"d1\n": hash_key("k")}, {})
    with grpc.insecure_channel(gateway.address) as ch:
        admin = pb_grpc.GatewayAdminStub(ch)
        code, msg = code_of(admin.SetTau, pb.SetTauRequest(task="evil\n", schedule=[pb.TauStep(tau=0.5)]),
                            keys.admin)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "task" in msg
        code, _ = code_of(admin.ResetDevice, pb.ResetDeviceRequest(device="d1\n"), keys.admin)
        assert code == grpc.StatusCode.INVALID_ARGUMENT


class Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that fails: 400 or 500 with text only the gateway may see."""

    def do_POST(self):  # noqa: N802 -- http.server's name
        status = 400 if b"bad-request" in self.rfile.read(int(self.headers["Content-Length"])) else 500
        body = b'{"error": {"message": "upstream-secret-detail at /internal/path", "type": "x"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_backend_and_store_errors_do_not_reach_devices(tmp_path, keys, request, caplog):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{upstream.server_port}/v1/internal-base"
    settings = make_settings(tmp_path, keys, "redis", request, backend="openai", openai_base_url=base_url,
                             openai_retries=0, openai_timeout_s=5)
    redis_port = str(request.getfixturevalue("redis_server").port)
    try:
        with Running(settings) as run, caplog.at_level(logging.WARNING, logger="cloud_gateway"):
            code, msg = code_of(run.device.Assist, assist_req("k1"), keys.d1)
            assert code == grpc.StatusCode.UNAVAILABLE
            code2, msg2 = code_of(run.device.Assist, assist_req("k2", content="bad-request"), keys.d1)
            assert code2 == grpc.StatusCode.INVALID_ARGUMENT
            request.getfixturevalue("redis_server").kill()
            code3, msg3 = code_of(run.device.ReportUsage, pb.ReportUsageRequest(
                task="math", responses=1, idempotency_key="r"), keys.d1)
            assert code3 == grpc.StatusCode.UNAVAILABLE
    finally:
        upstream.shutdown()
    for text in (msg, msg2, msg3):
        assert "upstream-secret" not in text and "internal" not in text and str(upstream.server_port) not in text
        assert redis_port not in text and "redis://" not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "upstream-secret-detail" in logged and "internal-base" in logged  # the operator still sees it
