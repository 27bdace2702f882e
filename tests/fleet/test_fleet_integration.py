"""`dagrpo fleet` end to end: 3 real edge agents (SmolLM2 GGUF on llama.cpp), a real gateway on a
real Redis, a real Prometheus scraping the gateway and the agents every second.

Checks: every metric the Grafana dashboard uses has samples in Prometheus, every dashboard query
returns series, the fleet's counts in Prometheus equal the gateway's own totals (its store) and
the load generator's, each device used its own key, and no process outlives the run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "dagrpo.json"
DEVICES = 3
# A LoRA that makes SmolLM2 ask for help on harder math (the base model never does): see
# fixtures/make_help_adapter.py. Its state.json carries lambda = 0.5.
HELP_RUN = Path(__file__).resolve().parent / "fixtures" / "help-run"
RATE_WINDOW = "15s"  # stands for Grafana's $__rate_interval (scrape interval 1 s)
KNOB_ONLY = {"edge_help_bias"}  # exported by agents with the help knob on; this fleet runs without it

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"].replace("$__rate_interval", RATE_WINDOW) for p in panels for t in p["targets"]]


def value(result: list[dict]) -> float:
    """The single value of an instant-query vector (0 when empty: the counter never moved)."""
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else 0.0


def by_label(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in result}


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory, redis_server, prometheus):
    """Runs the fleet once for every test of this module: (summary, Prometheus, run dir)."""
    out = tmp_path_factory.mktemp("fleet") / "run"
    out.mkdir()
    prom = prometheus(out / "prometheus-targets.json")
    cmd = [sys.executable, "-m", "dagrpo.cli", "fleet", "--devices", str(DEVICES),
           "--duration", "20", "--rate", "1.2", "--tasks", "math,science",
           "--max-tokens", "24", "--adapter", str(HELP_RUN),
           "--mode", "enforce", "--tau", "0", "--burst", "1",
           "--redis-url", redis_server.url, "--out", str(out), "--linger", "4", "--no-live"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    return summary, prom, out


def test_the_fleet_served_every_device_and_agrees_with_the_gateway(fleet_run):
    summary, _, out = fleet_run
    assert summary["devices"] == DEVICES
    for device, row in summary["per_device"].items():
        assert row["answers"] > 0, device
        # each agent metered under its own key: the gateway's per-device counts are the agent's
        assert summary["gateway"]["per_device"][device]["responses"] == row["answers"]
    assert summary["total"]["errors"] == 0
    assert summary["agrees_with_gateway"]
    lines = (out / "answers.jsonl").read_text().splitlines()
    assert len(lines) == summary["total"]["requests"]
    assert (out / "fleet.png").stat().st_size > 10_000


def test_the_budget_was_enforced(fleet_run):
    """tau 0 with a credit of 1: the first help request of a device and task is served, every
    later one is refused, so denials = help requests - cloud calls."""
    summary, _, _ = fleet_run
    t = summary["total"]
    assert t["help_requests"] >= 2, "the model asked for help less than twice: nothing to enforce"
    assert t["cloud"] >= 1 and t["denials"] >= 1
    assert t["denials"] == t["help_requests"] - t["cloud"]


def test_every_dashboard_metric_and_query_has_samples(fleet_run):
    summary, prom, _ = fleet_run
    start, end = summary["started_at"], summary["settled_at"] + 3
    names = set()
    for expr in dashboard_exprs():
        used = set(re.findall(r"\b((?:gateway|edge)_[a-z_]+)\b", expr))
        if used & KNOB_ONLY:
            continue
        names |= used
        assert prom.query_range(expr, start, end), f"dashboard query returned nothing: {expr}"
    assert len(names) >= 10
    for name in sorted(names):
        assert prom.query(f"count_over_time({name}[10m])", end), f"no samples of {name}"


def test_prometheus_counts_equal_the_gateway_totals(fleet_run):
    summary, prom, _ = fleet_run
    at = summary["settled_at"] + 3  # during --linger: every target still up, counters final
    gw = summary["gateway"]["per_task"]
    q = lambda expr: by_label(prom.query(expr, at), "task")  # noqa: E731
    responses = q("sum by (task) (gateway_responses_total)")
    helps = q("sum by (task) (gateway_help_requests_total)")
    denials = q("sum by (task) (gateway_denials_total)")
    allowed = q('sum by (task) (gateway_assists_total{outcome="allowed"})')
    tokens = q("sum by (task) (gateway_cloud_tokens_total)")
    answers = q("sum by (task) (edge_answers_total)")
    edge_helps = q("sum by (task) (edge_help_requests_total)")
    for task, g in gw.items():
        assert responses.get(task, 0) == g["responses"] == answers.get(task, 0), task
        assert helps.get(task, 0) == g["help_requests"] == edge_helps.get(task, 0), task
        assert denials.get(task, 0) == g["denials"], task
        assert allowed.get(task, 0) == g["cloud_calls"], task
        assert tokens.get(task, 0) == g["tokens"], task
        assert g["responses"] == summary["per_task"][task]["answers"], task
    # one series per agent: each device was scraped, and each serves the adapter's lambda
    lambdas = prom.query("edge_lambda", at)
    assert len(lambdas) == DEVICES and {float(r["value"][1]) for r in lambdas} == {0.5}
    assert value(prom.query("sum(edge_usage_pending_reports)", at)) == 0


def test_no_process_outlives_the_fleet(fleet_run):
    summary, _, _ = fleet_run
    for url in summary["endpoints"]["agents"].values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=2)
    host, port = summary["endpoints"]["gateway_metrics"].split(":")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/metrics", timeout=2)
