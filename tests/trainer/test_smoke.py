"""Two real training steps on the tiny model: LoRA weights change, lambda follows the budget.

The rollouts are scripted (half help requests with a valid format, half wrong local answers) so
the advantages are non-zero; everything else is real: tasks, scoring, the reference cloud, the
forward/backward through the peft model, AdamW, the dual update, checkpoints.
"""

import json

import pytest
import torch

from trainer.models import load_policy
from trainer.train import train


def _lora_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_two_steps_change_lora_and_raise_lambda_over_budget(tiny_cfg, tmp_path, scripted):
    cfg = tiny_cfg("phases.0.tau=0.1")
    initial, _ = load_policy(cfg.model, seed=cfg.train.seed)
    before = _lora_weights(initial)
    ctx = train(cfg, tmp_path, engine_factory=scripted.ScriptedEngine([scripted.HELP, scripted.WRONG]), progress=False)
    after = _lora_weights(ctx.model)
    assert before.keys() == after.keys() and before
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) == len(before), "every LoRA matrix should have moved"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["collab_ratio"] for r in records] == [0.5, 0.5]  # 2 of 4 ask, with a valid format
    assert all(r["adv_abs_mean"] > 0 for r in records)
    # 0.5 + 0.5*(0.5-0.1) = 0.7, then 0.9
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.9])
    assert ctx.lam > cfg.train.lambda_init
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["lambda"] == ctx.lam and saved["step"] == 2


def test_lambda_falls_under_budget(tiny_cfg, tmp_path, scripted):
    cfg = tiny_cfg("phases.0.tau=0.9")
    ctx = train(cfg, tmp_path, engine_factory=scripted.ScriptedEngine([scripted.HELP, scripted.WRONG]), progress=False)
    assert ctx.lam < cfg.train.lambda_init  # 0.5 - 0.5*0.4 - 0.5*0.4 = 0.1
    assert abs(ctx.lam - 0.1) < 1e-9


def test_output_directory_contract(tiny_cfg, tmp_path, scripted):
    cfg = tiny_cfg("train.eval_at_start=true")
    train(cfg, tmp_path, engine_factory=scripted.ScriptedEngine([scripted.HELP, scripted.WRONG]), progress=False)
    for name in ("config.toml", "metrics.jsonl", "evals.jsonl", "state.json", "optimizer.pt",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        assert (tmp_path / name).is_file(), name
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("step", "phase", "task", "tau", "lambda", "collab_ratio", "reward_mean", "cost_mean",
                "accuracy", "tokens_per_s", "help_requests", "responses", "collab_ratio_device"):
        assert key in record, key
    assert record["responses"] == 8 and record["help_requests"] == 4
    tags = [json.loads(line)["tag"] for line in (tmp_path / "evals.jsonl").read_text().splitlines()]
    assert tags == ["start", "phase0_end"]
