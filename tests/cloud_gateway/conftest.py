"""Real components for the gateway tests: redis-server on a free loopback port in a tmp dir."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server subprocess with AOF persistence; `restart()` kills it hard and starts it again."""

    dir: Path
    port: int
    fsync: str = "always"
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", self.fsync, "--protected-mode", "no",
             # as docs/gateway.md says to run it: bounded, and never evicting a budget counter
             "--maxmemory", "256mb", "--maxmemory-policy", "noeviction", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the AOF already holds survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/install-system-deps.sh")
    server = RedisServer(tmp_path / "redis", free_port())
    server.dir.mkdir()
    server.start()
    yield server
    server.kill()


def free_cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 <= 65535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair (p, p + 10000) for a cluster node")


@dataclass
class RedisCluster:
    """Three redis-server primaries (cluster-enabled, AOF always) joined by `redis-cli --cluster create`."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = [subprocess.run(["redis-cli", "-p", str(n.port), "CLUSTER", "INFO"], capture_output=True,
                                    text=True).stdout for n in self.nodes]
            if all("cluster_state:ok" in i and "cluster_known_nodes:3" in i for i in infos):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the redis cluster did not reach cluster_state:ok: {infos}")

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


@pytest.fixture
def redis_cluster(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/install-system-deps.sh")
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed (it creates the cluster): install redis-tools")
    nodes = []
    for i in range(3):
        node = RedisServer(tmp_path / f"cluster{i}", free_cluster_port(),
                           extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))
        node.dir.mkdir()
        nodes.append(node)
    cluster = RedisCluster(nodes)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


@dataclass
class Keys:
    path: Path
    d1: str
    d2: str
    admin: str


@pytest.fixture
def keys(tmp_path) -> Keys:
    from cloud_gateway.auth import add_key

    path = tmp_path / "keys.toml"
    return Keys(path, add_key(path, "d1"), add_key(path, "d2"), add_key(path, "ops", admin=True))


@pytest.fixture
def settings(tmp_path, keys):
    from cloud_gateway.config import load_settings

    return load_settings(port=0, metrics_port=0, keys_file=keys.path, sqlite_path=tmp_path / "gw.db",
                         reference_accuracy=1.0, grace_s=5.0)


@pytest.fixture
def gateway(settings):
    """An in-process gateway (SQLite store, reference backend) on a free loopback port."""
    from cloud_gateway.server import EmbeddedGateway

    with EmbeddedGateway(settings) as gw:
        yield gw


@pytest.fixture
def wide_limits(monkeypatch):
    """Per-device limits out of the way for gateway processes started after it: load tests drive
    one device key from dozens of clients back to back, far over what one real device sends
    (test_trust.py tests the limits)."""
    for name in ("RPC_PER_S", "RPC_BURST", "RESPONSES_PER_S", "RESPONSES_BURST", "ASSISTS_PER_S", "ASSISTS_BURST"):
        monkeypatch.setenv(f"GATEWAY_LIMITS__{name}", "1000000")
    monkeypatch.setenv("GATEWAY_LIMITS__RPC_CONCURRENT", "1000")


@dataclass
class GatewayProcess:
    """`dagrpo gateway serve` as a subprocess on a fixed loopback port (so it can be restarted)."""

    args: list[str]
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        import os
        import sys

        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagrpo.cli", "gateway", "serve", "--port", str(self.port),
                 "--metrics-port", "-1", "--log-level", "WARNING", *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return
                except grpc.RpcError:
                    time.sleep(0.1)
        raise RuntimeError(f"gateway did not become healthy: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture
def gateway_process(tmp_path, keys):
    """Factory: gateway_process(*extra_args) -> a started GatewayProcess; all killed after the test."""
    started = []

    def make(*args: str) -> GatewayProcess:
        gp = GatewayProcess(["--keys-file", str(keys.path), *args], free_port(), tmp_path / f"gw{len(started)}.log")
        started.append(gp)
        gp.start()
        return gp

    yield make
    for gp in started:
        gp.kill()
