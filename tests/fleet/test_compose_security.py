"""The compose fleet's trust boundaries (docs/security.md, "The compose fleet"), read from
docker-compose.yml as compose resolves it (anchors merged): who gets which secret, who reaches
whom, limits, users. Then deploy/make-keys.sh for real: the files it writes, and its Redis ACL on
a real redis-server with the store running through it."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
EDGES = [f"edge-{i:02d}" for i in range(1, 5)]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def secret_names(service: dict) -> list[str]:
    return [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])]


def networks(service: dict) -> set[str]:
    nets = service.get("networks", [])
    return set(nets if isinstance(nets, list) else nets.keys())


def test_each_edge_service_gets_its_own_device_key_and_nothing_else(compose):
    services = compose["services"]
    assert sorted(n for n in services if n.startswith("edge")) == EDGES
    for name in EDGES:
        s = services[name]
        assert s["secrets"] == [{"source": f"{name}-key", "target": "device-key"}, "edge-keys"], name
        assert compose["secrets"][f"{name}-key"]["file"] == f"./secrets/devices/{name}.key"
        assert not s.get("volumes"), f"{name} mounts {s.get('volumes')}"  # no keys volume, no secrets dir
        assert not any("KEY" in k and not k.endswith("_FILE") for k in s["environment"]), s["environment"]
    assert compose["secrets"]["edge-keys"]["file"] == "./secrets/edge-keys.toml"  # client key hashes


def test_the_admin_key_reaches_only_the_admin_one_shot_and_the_gateway_gets_hashes(compose):
    services = compose["services"]
    holders = {n for n, s in services.items() if "admin-key" in secret_names(s)}
    assert holders == {"admin"} and services["admin"]["profiles"] == ["admin"]
    assert compose["secrets"]["admin-key"]["file"] == "./secrets/admin.key"
    assert set(secret_names(services["gateway"])) == {"gateway-keys", "gateway-secrets"}
    assert compose["secrets"]["gateway-keys"]["file"] == "./secrets/gateway-keys.toml"
    assert services["gateway"]["environment"]["GATEWAY_KEYS_FILE"] == "/run/secrets/gateway-keys"
    assert "GATEWAY_REDIS_URL" not in services["gateway"]["environment"]  # the password lives in a secret
    device_keys = {f"{n}-key" for n in EDGES}
    for name, s in services.items():
        if not name.startswith("edge"):
            assert not device_keys & set(secret_names(s)), f"{name} holds a device key"


def test_only_the_offline_keys_job_mounts_the_secrets_directory(compose):
    for name, s in compose["services"].items():
        mounts = [v if isinstance(v, str) else v["source"] for v in s.get("volumes", [])]
        if any(m.split(":")[0].rstrip("/") in ("./secrets", "secrets") for m in mounts):
            assert name == "keys", name
    keys = compose["services"]["keys"]
    assert keys["network_mode"] == "none" and keys["profiles"] == ["setup"]


def test_networks_let_edges_reach_only_the_gateway(compose):
    services, nets = compose["services"], compose["networks"]
    assert all(nets[n]["internal"] is True for n in ("edge", "store", "llm"))
    for name in EDGES:
        assert networks(services[name]) == {"edge"}
    assert networks(services["gateway"]) == {"edge", "store", "llm"}
    assert networks(services["redis"]) == {"store"}
    assert networks(services["cloud-llm"]) == networks(services["cloud-llm-gpu"]) == {"llm"}
    reach = lambda net: {n for n, s in services.items() if net in networks(s)}  # noqa: E731
    assert reach("store") == {"redis", "gateway"}
    assert reach("llm") == {"cloud-llm", "cloud-llm-gpu", "gateway"}
    assert reach("edge") == {*EDGES, "gateway", "loadgen", "prometheus", "admin"}
    assert reach("obs") == {"prometheus", "grafana"}
    for name, s in services.items():  # published ports: loopback unless the operator says otherwise
        for port in s.get("ports", []):
            assert re.fullmatch(r"\$\{\w+:-127\.0\.0\.1\}:\d+:\d+", port), (name, port)
            assert networks(s) & {"obs"}, name  # internal networks cannot publish


def test_every_service_is_hardened_limited_and_not_root(compose):
    for name, s in compose["services"].items():
        assert "no-new-privileges:true" in s["security_opt"], name
        assert s["cap_drop"] == ["ALL"] and not s.get("cap_add"), name
        user = str(s["user"]).split(":")[0]
        assert user not in ("0", "root", "${SECRETS_UID:-0}") and re.fullmatch(r"[\w${}:-]+", user), (name, user)
        assert not s.get("privileged") and s.get("ipc") != "host" and s.get("pid") != "host", name
        if name != "keys":  # the one-shot without network
            assert s["mem_limit"] and s["pids_limit"] > 0, name
            assert "cpus" in s or name == "cloud-llm-gpu", name  # vLLM: its GPU reservation


@pytest.mark.parametrize("dockerfile", ["Dockerfile.gateway", "Dockerfile.edge", "Dockerfile.loadgen",
                                        "Dockerfile.cloud-llm"])
def test_every_image_ends_as_a_non_root_user(dockerfile):
    users = re.findall(r"^USER (\S+)", (ROOT / "deploy" / dockerfile).read_text(), re.M)
    assert users and users[-1] not in ("root", "0"), users


def test_redis_has_an_acl_and_never_evicts(compose):
    cmd = compose["services"]["redis"]["command"]
    arg = lambda flag: cmd[cmd.index(flag) + 1]  # noqa: E731
    assert arg("--aclfile") == "/run/secrets/redis-acl" and "redis-acl" in compose["services"]["redis"]["secrets"]
    assert arg("--maxmemory-policy") == "noeviction" and arg("--maxmemory")
    assert arg("--appendonly") == "yes"


def test_the_cloud_llm_servers_require_the_key(compose):
    services = compose["services"]
    assert secret_names(services["cloud-llm"]) == ["cloud-llm-key"]
    entry = (ROOT / "deploy/cloud-llm-entrypoint.sh").read_text()
    assert '--api_key "$key"' in entry
    assert "/run/secrets/cloud-llm-key" in (ROOT / "deploy/Dockerfile.cloud-llm").read_text()
    assert "Bearer" in " ".join(services["cloud-llm"]["healthcheck"]["test"])
    gpu = services["cloud-llm-gpu"]
    assert secret_names(gpu) == ["cloud-llm-key"]
    assert "VLLM_API_KEY=$$(cat /run/secrets/cloud-llm-key)" in gpu["entrypoint"][2]


def test_generated_override_gives_each_new_edge_its_own_key(compose, tmp_path):
    from deploy.compose_devices import override

    doc = override(compose, 6)
    assert list(doc["services"]) == ["edge-05", "edge-06"]
    assert doc["services"]["edge-06"]["secrets"] == [{"source": "edge-06-key", "target": "device-key"}, "edge-keys"]
    assert doc["secrets"]["edge-05-key"] == {"file": "./secrets/devices/edge-05.key"}
    assert networks(doc["services"]["edge-05"]) == {"edge"} and doc["services"]["edge-05"]["cap_drop"] == ["ALL"]
    with pytest.raises(ValueError, match="already has"):
        override(compose, 4)
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    path = tmp_path / "override.yml"
    path.write_text(yaml.safe_dump(doc))
    r = subprocess.run(["docker-compose", "-f", str(COMPOSE), "-f", str(path), "config", "-q"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_prometheus_start_scrapes_every_gateway_worker(tmp_path):
    out = tmp_path / "prometheus.yml"
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_WORKERS": "3", "PROMETHEUS_BIN": "true",
           "PROMETHEUS_TEMPLATE": str(ROOT / "deploy/prometheus/prometheus.yml"), "PROMETHEUS_CONFIG": str(out)}
    subprocess.run(["sh", str(ROOT / "deploy/prometheus/start.sh")], env=env, check=True)
    jobs = {j["job_name"]: j for j in yaml.safe_load(out.read_text())["scrape_configs"]}
    assert [(c["names"], c["port"]) for c in jobs["gateway"]["dns_sd_configs"]] == [
        (["gateway"], 9464), (["gateway"], 9465), (["gateway"], 9466)]  # cloud_gateway/cli.py: 9464 + i
    assert set(jobs) == {"gateway", "edge", "loadgen", "prometheus"}
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "config", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_edge_entrypoint_hands_its_one_key_to_the_agent_or_refuses(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dagrpo").write_text('#!/bin/sh\necho "KEY=$EDGE_API_KEY ARGS=$*"\n')  # `dagrpo edge serve` stand-in
    (bin_dir / "dagrpo").chmod(0o755)
    key = tmp_path / "device-key"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "EDGE_API_KEY_FILE": str(key)}
    entry = ["sh", str(ROOT / "deploy/edge-entrypoint.sh"), "--port", "8080"]
    run = lambda: subprocess.run(entry, env=env, capture_output=True, text=True)  # noqa: E731
    missing = run()
    assert missing.returncode == 1 and "no device key" in missing.stderr
    key.write_text("dgk_one\n")
    assert run().stdout.strip() == "KEY=dgk_one ARGS=edge serve --port 8080"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(keys_dir: Path, bin_dir: Path, devices: int) -> None:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "KEYS_DIR": str(keys_dir), "FLEET_DEVICES": str(devices)}
    r = subprocess.run(["sh", str(ROOT / "deploy/make-keys.sh")], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


@pytest.mark.integration
def test_make_keys_writes_one_file_per_secret_and_an_acl_that_fits_the_store(tmp_path):
    from cloud_gateway.auth import KeyRing
    from edge_agent.auth import EdgeKeys

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/install-system-deps.sh")
    bin_dir, keys_dir = tmp_path / "bin", tmp_path / "secrets"
    bin_dir.mkdir()
    (bin_dir / "dagrpo").write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m dagrpo.cli "$@"\n')
    (bin_dir / "dagrpo").chmod(0o755)
    make_keys(keys_dir, bin_dir, 2)
    assert (keys_dir.stat().st_mode & 0o777) == 0o700
    devices = {p.stem: p.read_text().strip() for p in (keys_dir / "devices").glob("*.key")}
    assert sorted(devices) == ["edge-01", "edge-02"] and len(set(devices.values())) == 2
    admin = (keys_dir / "admin.key").read_text().strip()
    hashes = (keys_dir / "gateway-keys.toml").read_text()
    assert not any(k in hashes for k in [*devices.values(), admin])  # hashes only
    ring = KeyRing.load(keys_dir / "gateway-keys.toml")
    assert ring.identify(devices["edge-02"]).name == "edge-02" and ring.identify(admin).admin
    assert EdgeKeys.load(keys_dir / "edge-keys.toml").identify((keys_dir / "loadgen.key").read_text().strip()) == \
        ("loadgen", False)
    secrets = tomllib.loads((keys_dir / "gateway-secrets.toml").read_text())
    assert secrets["openai_api_key"] == (keys_dir / "cloud-llm.key").read_text().strip()
    before = {p.name: p.read_text() for p in keys_dir.rglob("*") if p.is_file()}
    make_keys(keys_dir, bin_dir, 3)  # a rerun adds a device and keeps every existing secret
    after = {p.name: p.read_text() for p in keys_dir.rglob("*") if p.is_file()}
    assert {k: after[k] for k in before if k != "gateway-keys.toml"} == \
        {k: v for k, v in before.items() if k != "gateway-keys.toml"}
    assert "edge-03.key" in after and KeyRing.load(keys_dir / "gateway-keys.toml").identify(devices["edge-01"])

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(tmp_path), "--aclfile", str(keys_dir / "redis-users.acl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cli = lambda *a: subprocess.run(["redis-cli", "-p", str(port), *a], capture_output=True,  # noqa: E731
                                        text=True).stdout.strip()
        deadline = time.monotonic() + 10
        while cli("PING") != "PONG" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cli("PING") == "PONG"  # the healthcheck: unauthenticated PING
        assert "NOAUTH" in cli("GET", "gw:{0}:p:math") or "NOPERM" in cli("GET", "gw:{0}:p:math")
        url = secrets["redis_url"].replace("@redis:6379", f"@127.0.0.1:{port}")
        password = url.split(":")[2].split("@")[0]
        gw = lambda *a: cli("--user", "gateway", "--pass", password, "--no-auth-warning", *a)  # noqa: E731
        for denied in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SET", "other", "1"),
                       ("SCRIPT", "FLUSH"), ("ACL", "LIST")):
            assert "NOPERM" in gw(*denied), denied
        asyncio.run(store_through_the_acl(url))
    finally:
        proc.kill()
        proc.wait(10)


async def store_through_the_acl(url: str) -> None:
    """Every store operation the gateway runs, authenticated as `gateway`."""
    from cloud_gateway.store.base import Completion
    from cloud_gateway.store.redis_store import RedisStore
    from collab import budget as b

    store = RedisStore(url, b.Limits(10**9, 10**6, 10**9, 10**6))
    try:
        await store.seed_policies({"math": b.Policy(((0, 300_000),), "enforce", 4 * b.PPM, 256)})
        await store.set_policy("math", b.Policy(((0, 500_000),), "enforce", 4 * b.PPM, 256))
        assert (await store.report("edge-01", "math", 4, 1, "r1")).counters.responses == 4
        assert (await store.assist("edge-01", "math", "a1", subject="math/test/1", report_key="r2")).allowed
        await store.complete("edge-01", "math", "a1", Completion("x", 1, 1, "reference"))
        assert (await store.completion("edge-01", "a1")).completion == "x"
        assert [s.device for s in await store.budgets()] == ["edge-01"]
        assert (await store.policies())["math"].schedule == ((0, 500_000),)
        assert await store.reset("edge-01") == 1 and await store.ping()
    finally:
        await store.close()
