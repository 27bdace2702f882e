"""Ctrl-C on `dagrpo fleet` mid-load: the load stops, usage still settles, every process it
started is gone, and the summary says it was interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_ctrl_c_stops_every_process_and_still_writes_the_summary(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagrpo.cli", "fleet", "--devices", "1", "--duration", "600",
         "--rate", "0.5", "--max-tokens", "8", "--out", str(out), "--no-live"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    targets = out / "prometheus-targets.json"
    deadline = time.monotonic() + 120
    while not targets.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert targets.exists(), proc.communicate(timeout=30)[0][-3000:]
    time.sleep(3)  # a request or two in flight
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["agrees_with_gateway"]
    for entry in json.loads(targets.read_text()):  # the gateway's and the agent's /metrics
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{entry['targets'][0]}/metrics", timeout=2)
