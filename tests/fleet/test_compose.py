"""docker-compose.yml, the Dockerfiles, Prometheus' config and the dashboard, checked without a
Docker engine: `docker-compose config`, files that exist, extras without torch, metric names
that the services really define."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "dagrpo.json"


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]])
def test_docker_compose_config_is_valid(profile):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (CI installs it: scripts/install-system-deps.sh)")
    r = subprocess.run(["docker-compose", "-f", str(COMPOSE), *profile, "config", "-q"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_every_built_image_comes_from_files_in_the_repo():
    built = {name: s["build"] for name, s in compose_services().items() if "build" in s}
    assert {"gateway", "edge-01", "cloud-llm", "loadgen", "keys", "admin"} <= set(built)
    for name, build in built.items():
        context = ROOT / build["context"]
        dockerfile = context / build["dockerfile"]
        assert context.is_dir() and dockerfile.is_file(), name
        for line in dockerfile.read_text().splitlines():  # every COPY from the context exists
            if line.startswith("COPY ") and "--from=" not in line:
                for src in line.split()[1:-1]:
                    assert (context / src).exists(), f"{dockerfile.name}: COPY {src}"


def test_every_other_image_is_a_pinned_upstream_image():
    for name, s in compose_services().items():
        if "build" not in s:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", s["image"]), name
            assert not s["image"].endswith(":latest"), name


@pytest.mark.parametrize("dockerfile, extra", [("Dockerfile.edge", "edge"),
                                               ("Dockerfile.gateway", "gateway")])
def test_edge_and_gateway_images_install_only_their_extra_and_no_torch(dockerfile, extra):
    text = (ROOT / "deploy" / dockerfile).read_text()
    extras = set(re.findall(r"\.\[([\w,]+)\]", text)) | set(re.findall(r"dagrpo\[([\w,]+)\]", text))
    assert extras == {extra}
    assert "torch" not in text.lower().replace("no torch", "")
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = re.search(rf"^{extra} = \[(.*?)^\]", pyproject, re.S | re.M).group(1)
    assert "torch" not in block and "transformers" not in block


def test_services_have_healthchecks_and_wait_for_healthy_dependencies():
    services = compose_services()
    for name in ("redis", "gateway", "edge-01", "edge-04", "cloud-llm", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    for name, s in services.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert cond["condition"] == "service_healthy", f"{name} -> {dep}"
    assert "--appendonly" in services["redis"]["command"]
    assert services["cloud-llm-gpu"]["profiles"] == ["gpu"]


def test_prometheus_config_passes_promtool():
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    r = subprocess.run(["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def defined_metrics() -> set[str]:
    """Names passed to Counter/Gauge/Histogram in the gateway's and the agent's metrics modules,
    with the series names Prometheus derives from them."""
    names = set()
    for path in ("cloud_gateway/metrics.py", "edge_agent/metrics.py"):
        src = (ROOT / path).read_text()
        for kind, name in re.findall(r"\b(Counter|Gauge|Histogram)\(\s*\"(\w+)\"", src):
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:gateway|edge)_[a-z_]+)\b", expr))


def test_dashboard_uses_only_metrics_the_services_define():
    used = set().union(*map(metric_names, dashboard_exprs()))
    assert used, "no service metric in the dashboard"
    assert used <= defined_metrics(), used - defined_metrics()


def test_dashboard_covers_the_issue_panels():
    used = set().union(*map(metric_names, dashboard_exprs()))
    for needed in ("gateway_help_requests_total", "gateway_responses_total", "gateway_tau",
                   "gateway_denials_total", "gateway_cloud_tokens_total",
                   "edge_answer_latency_seconds_bucket", "edge_lambda", "edge_queue_depth",
                   "edge_help_bias"):
        assert needed in used, needed
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    for p in json.loads(DASHBOARD.read_text())["panels"]:
        assert p["datasource"]["uid"] == uid
