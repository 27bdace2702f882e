"""`dagrpo experiment` with `knob = true` on the real SmolLM2 GGUF: the self-asking method is
evaluated twice at each phase end, greedy and with the bias calibrated to the task's tau."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

PRESET = """
[experiment]
name = "knob"
kind = "table1"
methods = ["da_grpo"]
seeds = [0]
knob = true
knob_val_n = 4

[experiment.warmup]
steps = 2
batch = 2
help_share = 0.5

[base.model]
name_or_path = "smollm2"
lora_r = 4
lora_alpha = 8.0

[base.train]
G = 2
batch_prompts = 1
max_new_tokens = 16
eval_n = 4
eval_samples = 0
eval_at_start = false
train_pool = 8
engine = "llamacpp"
engine_threads = 1

[[scenarios]]
name = "s1"

[[scenarios.phases]]
tasks = ["math"]
steps = 1
tau = 0.5

[[scenarios.phases]]
tasks = ["knowledge"]
steps = 1
tau = 0.5
"""


def test_knob_rows_come_from_a_calibrated_bias_at_each_phase_end(tmp_path):
    from trainer.experiment.driver import run_all
    from trainer.experiment.preset import load_preset

    (tmp_path / "p.toml").write_text(PRESET)
    summary = run_all(load_preset(tmp_path / "p.toml"), tmp_path / "out", echo=lambda _: None)
    run = tmp_path / "out" / "s1" / "da_grpo" / "seed0"
    knob = [json.loads(line) for line in (run / "knob.jsonl").read_text().splitlines()]
    assert [r["tag"] for r in knob] == ["phase0_end", "phase1_end"]
    assert set(knob[0]["tasks"]) == {"math"} and set(knob[1]["tasks"]) == {"math", "knowledge"}
    for rec in knob:
        for m in rec["tasks"].values():
            assert m["n"] == 4 and m["tau"] == 0.5
            # the bias sits at the val scores' (1 - tau) quantile: at most half of val asks
            assert m["val_help_rate"] <= 0.5 + 1e-9
            assert 0.0 <= m["collab_ratio"] <= 1.0 and 0.0 <= m["joint_accuracy"] <= 1.0
    result = json.loads((run / "result.json").read_text())
    assert set(result) == {"da_grpo", "da_grpo+knob"}
    greedy = result["da_grpo"]["evals"]["phase1_end"]["math"]
    assert greedy["n"] == 4  # the same test queries, evaluated greedily by the trainer
    md = (tmp_path / "out" / "results.md").read_text()
    assert "[knob: bias calibrated to tau]" in md and "[greedy]" in md
    assert summary["scenarios"]["s1"]["methods"]["da_grpo+knob"]["seeds"] == [0]
