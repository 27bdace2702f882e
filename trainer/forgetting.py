"""A task's forgetting in one run: accuracy during its phase, after the last phase, and the rate.

during = accuracy at the end of the first phase that trains the task, post = at the end of the last
phase (None when that is the same phase), forgetting = collab.metrics.forgetting_rate(during, post).
`evals` is {tag: {task: metrics}} with tags "phase<k>_end", as the trainer and the experiment log them.
"""

from __future__ import annotations

from collab.metrics import forgetting_rate
from trainer.config import RunConfig


def task_forgetting(evals: dict, cfg: RunConfig, task: str, which: str) -> tuple:
    """(during, post, forgetting) for `task`; which = "local" or "joint"; None where not measured."""
    first = next(k for k, p in enumerate(cfg.phases) if task in p.task_names())
    last = len(cfg.phases) - 1
    key = f"{which}_accuracy"
    during = evals.get(f"phase{first}_end", {}).get(task, {}).get(key)
    post = evals.get(f"phase{last}_end", {}).get(task, {}).get(key) if last > first else None
    forget = forgetting_rate(during, post) if during is not None and post is not None else None
    return during, post, forget
