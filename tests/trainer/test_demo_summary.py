"""The run summary (trainer/commands.py): training ratio per phase half and held-out help rates vs tau."""

from __future__ import annotations

import json

from trainer.commands import print_summary, summarize_run
from trainer.config import load_config, to_toml


def test_summary_reports_second_half_ratios_and_sampled_rates(tmp_path, capsys):
    cfg = load_config("configs/smoke.toml", ["phases.0.steps=4", "phases.1.tau=0.5"])
    (tmp_path / "config.toml").write_text(to_toml(cfg))
    ratios = [1.0, 0.5, 0.25, 0.75, 0.0]  # phase 0: 4 steps (second half 0.25, 0.75), phase 1: 1 step
    metrics = [{"step": i + 1, "phase": int(i >= 4), "tau": 0.3 if i < 4 else 0.5, "collab_ratio": r,
                "lambda_next": 0.5} for i, r in enumerate(ratios)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    ev = {"tag": "phase1_end", "task": "knowledge", "n": 2, "local_n": 2, "local_accuracy": 0.5,
          "joint_accuracy": 0.5, "collab_ratio": 0.0, "format_rate": 1.0, "sampled_collab_ratio": 0.25,
          "sampled_collab_ci": [0.1, 0.5], "sampled_n": 8}
    (tmp_path / "evals.jsonl").write_text(json.dumps(ev) + "\n")
    s = summarize_run(tmp_path)
    assert s["phase_ratios"] == [{"phase": "group1", "tau": 0.3, "train_ratio_second_half": 0.5},
                                 {"phase": "group2", "tau": 0.5, "train_ratio_second_half": 0.0}]
    assert s["task_tau"] == {"math": 0.3, "science": 0.3, "knowledge": 0.5}
    print_summary(s)
    out = capsys.readouterr().out
    assert "second half of group1: 0.500 vs tau 0.30" in out
    assert "knowledge: greedy 0.00, sampled 0.25 [0.10, 0.50] (n=8) vs tau 0.50" in out
