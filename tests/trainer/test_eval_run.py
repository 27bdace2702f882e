"""`dagrpo eval --run DIR` is the run's own final evaluation: same engine, same cloud draws, same numbers."""

from __future__ import annotations

import json

import pytest

from trainer.commands import eval_command
from trainer.train import train


def _phase_end(run, tag="phase0_end"):
    """The run's greedy phase-end numbers (`dagrpo eval` is greedy: the sampled help rate that the
    run adds, with its own per-evaluation seed, is not part of what it reproduces)."""
    from dataclasses import fields

    from trainer.evaluate import TaskEval

    keys = {f.name for f in fields(TaskEval)}
    return {r["task"]: {k: v for k, v in r.items() if k in keys}
            for r in map(json.loads, (run / "evals.jsonl").read_text().splitlines()) if r["tag"] == tag}


@pytest.mark.slow
def test_eval_of_a_run_reproduces_its_phase_end_numbers(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg("train.max_new_tokens=16", "train.eval_max_new_tokens=24"), run, progress=False)
    assert eval_command(run=str(run), adapter=None, config=None, n=None, tasks=None, base=False) == 0
    assert json.loads((run / "eval.json").read_text()) == _phase_end(run)


@pytest.mark.slow
@pytest.mark.integration
def test_a_llamacpp_run_evaluates_on_llamacpp_and_reproduces_its_numbers(tmp_path):
    pytest.importorskip("llama_cpp")
    from trainer.config import load_config

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'train.engine="llamacpp"', "train.engine_threads=1", "train.G=2",
        "train.batch_prompts=1", "train.max_new_tokens=8", "train.eval_n=2", "train.eval_max_new_tokens=12",
        "train.eval_at_start=false", 'phases=[{tasks=["math"], steps=1, tau=0.3}]',
    ])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    assert eval_command(run=str(run), adapter=None, config=None, n=None, tasks=None, base=False) == 0
    assert json.loads((run / "eval.json").read_text()) == _phase_end(run)
