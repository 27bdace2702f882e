"""Resume is exact: 4 steps straight == 2 steps, stop, resume, 2 steps (weights, lambda, metrics)."""

import json

import torch

from trainer.train import train



def _metrics(path):
    keep = ("step", "task", "tau", "lambda", "lambda_next", "collab_ratio", "reward_mean", "loss", "grad_norm")
    return [{k: json.loads(line)[k] for k in keep} for line in path.read_text().splitlines()]


def test_four_steps_equal_two_plus_resume_plus_two(tiny_cfg, tmp_path, scripted):
    texts = [scripted.HELP, scripted.WRONG, scripted.WRONG + " extra", scripted.HELP.replace("hard", "tricky")]
    # two phases with a tau schedule and evaluation every 2 steps, sampled texts drawn by torch RNG
    cfg = tiny_cfg(
        'phases=[{tasks=["math","science"], steps=3, tau_schedule=[[0, 0.2], [2, 0.6]]}, {tasks=["knowledge"], steps=1, tau=0.4}]',
        "train.eval_every=2",
    )
    straight = train(cfg, tmp_path / "a", engine_factory=scripted.ScriptedEngine(texts, sample=True), progress=False)
    first = train(cfg, tmp_path / "b", engine_factory=scripted.ScriptedEngine(texts, sample=True), progress=False, max_steps=2)
    assert first.step == 2
    resumed = train(None, tmp_path / "b", resume=True, engine_factory=scripted.ScriptedEngine(texts, sample=True),
                    progress=False)
    assert resumed.step == straight.step == 4
    assert resumed.lam == straight.lam
    a = {n: p for n, p in straight.model.named_parameters() if "lora_" in n}
    b = {n: p for n, p in resumed.model.named_parameters() if "lora_" in n}
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert _metrics(tmp_path / "a" / "metrics.jsonl") == _metrics(tmp_path / "b" / "metrics.jsonl")
    evals_a = (tmp_path / "a" / "evals.jsonl").read_text()
    assert evals_a == (tmp_path / "b" / "evals.jsonl").read_text()
    assert [r["tau"] for r in _metrics(tmp_path / "a" / "metrics.jsonl")] == [0.2, 0.2, 0.6, 0.4]
