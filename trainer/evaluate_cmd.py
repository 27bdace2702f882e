"""Load a base model (+ adapter) and evaluate it on the test splits of a config's tasks."""

from __future__ import annotations

from pathlib import Path

from collab.tasks import get_task
from dagrpo.errors import UserError
from trainer.cloud import make_cloud
from trainer.config import RunConfig
from trainer.evaluate import TaskEval, evaluate
from trainer.models import load_base, load_policy
from trainer.prompting import messages, prompt_ids
from trainer.engines.torch_engine import HFEngine


def evaluate_adapter(cfg: RunConfig, adapter: Path | None, *, n: int | None, tasks: list[str] | None
                     ) -> dict[str, TaskEval]:
    names = tasks or cfg.phase_tasks()
    try:
        tests = {t: get_task(t).examples("test", n=n or cfg.train.eval_n, seed=cfg.train.seed) for t in names}
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    if adapter is None:
        model, tokenizer = load_base(cfg.model, cfg.train.seed)
    else:
        model, tokenizer = load_policy(cfg.model, adapter=adapter, seed=cfg.train.seed)
    model.eval()

    return evaluate(
        HFEngine(model, tokenizer), lambda ex: prompt_ids(tokenizer, ex), messages, make_cloud(cfg.cloud, cfg.train.seed), tests,
        max_new_tokens=cfg.train.eval_max_new_tokens or cfg.train.max_new_tokens,
        math_grader=cfg.train.math_grader, tag="eval",
    )
