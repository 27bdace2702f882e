"""`dagrpo train / eval / demo` as a user runs them: real subprocesses on the smoke preset."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _dagrpo(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dagrpo.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)


def test_demo_help_is_instant_and_light(repo_root):
    out = _dagrpo("demo", "--help", cwd=repo_root)
    assert out.returncode == 0 and "SmolLM2" in out.stdout
    # --help must not import torch
    code = "import sys, dagrpo.cli as c; c.build_parser(); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=ENV).returncode == 0


def test_bad_config_exits_2_naming_the_field(repo_root, tmp_path):
    out = _dagrpo("train", "--config", "configs/smoke.toml", "--set", "train.G=1", "--out", str(tmp_path),
                  cwd=repo_root)
    assert out.returncode == 2
    assert "train.G" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_train_then_eval_on_smoke_preset(repo_root, tmp_path):
    run = tmp_path / "run"
    out = _dagrpo("train", "--config", "configs/smoke.toml", "--out", str(run), "--no-progress", cwd=repo_root)
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["task"] for r in records] == ["math", "science", "knowledge"]
    for png in ("lambda.png", "ratio.png", "accuracy.png"):
        assert (run / png).stat().st_size > 1000
    assert "forgetting rate math" in out.stdout
    ev = _dagrpo("eval", "--run", str(run), cwd=repo_root)
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads((run / "eval.json").read_text())
    assert set(result) == {"math", "science", "knowledge"}
    assert all(r["n"] == 2 for r in result.values())
