"""Load a base model (+ adapter) and evaluate it on the test splits of a config's tasks.

With a run directory (`dagrpo eval --run DIR`) the evaluation is the run's own final one: the
run's engine (`train.engine`: a llama.cpp run evaluates on llama.cpp with its exported LoRA),
its last phase-end tag and, with a gateway, its run id on every key, so the cloud answers are the
same draws (reference backend) or replays of the same calls (gateway: counted once), and the
numbers equal the run's `phase<last>_end` record in evals.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

from dagrpo.errors import UserError
from trainer.cloud import make_cloud
from trainer.config import RunConfig
from trainer.engines import make_engine_factory
from trainer.evaluate import TaskEval, evaluate, test_sets
from trainer.models import load_base, load_policy
from trainer.prompting import messages, prompt_ids
from trainer.engines.torch_engine import HFEngine


def evaluate_adapter(cfg: RunConfig, adapter: Path | None, *, n: int | None, tasks: list[str] | None,
                     run_dir: Path | None = None) -> dict[str, TaskEval]:
    """Evaluate `adapter` (None: the base model); `run_dir` makes it that run's final evaluation."""
    last = len(cfg.phases) - 1
    names = tasks or (cfg.eval_task_names(last) if run_dir is not None else cfg.phase_tasks())
    try:
        tests = test_sets(cfg, names, n)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    if adapter is None:
        model, tokenizer = load_base(cfg.model, cfg.train.seed)
    else:
        model, tokenizer = load_policy(cfg.model, adapter=adapter, seed=cfg.train.seed)
    model.eval()
    run_id, tag, bias = "", "eval", None
    if run_dir is not None:
        state = json.loads((run_dir / "state.json").read_text())
        run_id, tag = state.get("run_id", ""), f"phase{last}_end"
        if cfg.train.rollout_knob:  # the run's deployed policy: its LoRA + each task's help bias
            bias = state.get("help_bias", {})
    engine = make_engine_factory(cfg.model, cfg.train)(model, tokenizer) if run_dir is not None \
        else HFEngine(model, tokenizer)
    return evaluate(
        engine, lambda ex: prompt_ids(tokenizer, ex), messages, make_cloud(cfg.cloud, cfg.train.seed, run_id), tests,
        max_new_tokens=cfg.train.eval_max_new_tokens or cfg.train.max_new_tokens,
        math_grader=cfg.train.math_grader, tag=tag, help_bias=bias,
    )
