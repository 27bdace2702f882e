"""Real components for the fleet tests: redis-server and a Prometheus server, each started on a
free loopback port in the test's tmp dir and killed afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed (Debian package {package}): "
                    "run scripts/install-system-deps.sh")


def _wait(proc: subprocess.Popen, ready, what: str, log: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except (OSError, httpx.TransportError):  # not listening yet (httpx's errors are no OSError)
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s: {log.read_text()[-2000:]}")


@dataclass
class Redis:
    url: str


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """redis-server with AOF on, as in docker-compose (one per test module)."""
    _need("redis-server", "redis-server")
    tmp_path = tmp_path_factory.mktemp("redis")
    port, data, log = free_port(), tmp_path / "redis", tmp_path / "redis.log"
    data.mkdir()
    with open(log, "wb") as out:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                 "--dir", str(data), "--save", "", "--appendonly", "yes"],
                                stdout=out, stderr=subprocess.STDOUT)

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    _wait(proc, pong, "redis-server", log)
    yield Redis(f"redis://127.0.0.1:{port}/0")
    proc.kill()
    proc.wait(10)


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str, at: float) -> list[dict]:
        """Instant query at unix time `at`: the result vector."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr, "time": at}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query_range",
                      params={"query": expr, "start": start, "end": end, "step": step}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Factory: prometheus(file_sd_path) -> a Prometheus scraping, every second, the targets
    listed in that file_sd JSON file (which may appear later: Prometheus watches it)."""
    _need("prometheus", "prometheus")
    tmp_path = tmp_path_factory.mktemp("prometheus")
    procs = []

    def start(targets_file: Path) -> Prometheus:
        port, log = free_port(), tmp_path / "prometheus.log"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: fleet\n    file_sd_configs:\n"
            f"      - files: ['{targets_file}']\n        refresh_interval: 1s\n")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait(proc, lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
              "prometheus", log)
        return Prometheus(url)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
