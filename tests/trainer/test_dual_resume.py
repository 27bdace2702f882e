"""The budget-tracking options in the real trainer loop (tiny model, scripted rollouts):
resume restores the PID controller and the running cost baseline exactly; skip_zero_steps skips
the optimizer step on an all-zero batch, where AdamW would otherwise move on its momentum.
"""

import json

import torch

from trainer.train import train


def _lora(ctx):
    return {n: p.detach().clone() for n, p in ctx.model.named_parameters() if "lora_" in n}


def test_resume_restores_pid_and_running_baseline_exactly(tiny_cfg, tmp_path, scripted):
    texts = [scripted.HELP, scripted.WRONG, scripted.WRONG + " extra", scripted.HELP.replace("hard", "tricky")]
    cfg = tiny_cfg('phases=[{tasks=["math"], steps=4, tau_schedule=[[0, 0.2], [2, 0.6]]}]',
                   'train.method="da_grpo_tracked"', 'train.cost_baseline="running"', "train.pid_kp=0.7",
                   "train.pid_kd=0.3", "train.cost_baseline_ema=0.5")
    straight = train(cfg, tmp_path / "a", engine_factory=scripted.ScriptedEngine(texts, sample=True), progress=False)
    train(cfg, tmp_path / "b", engine_factory=scripted.ScriptedEngine(texts, sample=True), progress=False, max_steps=2)
    mid = json.loads((tmp_path / "b" / "state.json").read_text())
    assert mid["dual"]["kind"] == "pid" and mid["dual"]["prev_jc"] is not None
    assert mid["method"]["running"] is not None
    resumed = train(None, tmp_path / "b", resume=True, engine_factory=scripted.ScriptedEngine(texts, sample=True),
                    progress=False)
    assert resumed.dual.to_dict() == straight.dual.to_dict()
    assert resumed.method.state_dict() == straight.method.state_dict()
    assert resumed.lam == straight.lam == straight.dual.lam
    a, b = _lora(straight), _lora(resumed)
    assert all(torch.equal(a[n], b[n]) for n in a)
    lam_a = [json.loads(x)["lambda_next"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lam_b = [json.loads(x)["lambda_next"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert lam_a == lam_b and len(set(lam_a)) > 1


def test_skip_zero_steps_keeps_the_lora_still_on_an_all_zero_batch(tiny_cfg, tmp_path, scripted):
    # step 1: mixed groups (help / wrong) -> nonzero advantages, AdamW gains momentum;
    # step 2 (resumed with an engine that always asks): uniform groups, every advantage 0
    for skip in (False, True):
        cfg = tiny_cfg('phases=[{tasks=["math"], steps=2, tau=0.2}]', f"train.skip_zero_steps={str(skip).lower()}")
        out = tmp_path / f"skip{skip}"
        first = train(cfg, out, engine_factory=scripted.ScriptedEngine([scripted.HELP, scripted.WRONG]),
                      progress=False, max_steps=1)
        before = _lora(first)
        second = train(None, out, resume=True, engine_factory=scripted.ScriptedEngine([scripted.HELP]), progress=False)
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["adv_abs_mean"] == 0.0
        after = _lora(second)
        moved = any(not torch.equal(before[n], after[n]) for n in before)
        assert moved != skip  # AdamW's momentum moves the LoRA unless the step is skipped
