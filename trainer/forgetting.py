"""The forgetting rate (paper section 4) and a task's forgetting in one run.

during = accuracy at the end of the first phase that trains the task, post = at the end of the last
phase (None when that is the same phase), forgetting = forgetting_rate(during, post).
`evals` is {tag: {task: metrics}} with tags "phase<k>_end", as the trainer and the experiment log them.
"""

from __future__ import annotations

from trainer.config import RunConfig


def forgetting_rate(acc_task: float, acc_switch: float) -> float | None:
    """(acc_task - acc_switch) / acc_task: the fraction of a task's accuracy lost after a switch.

    `acc_task` is the accuracy on the task at the end of training on it, `acc_switch` the accuracy
    on the same task after training on later tasks; both in [0, 1]. Negative values mean the task
    improved (backward transfer). When `acc_task == 0` the rate is undefined and None is returned
    (not 0: "nothing forgotten" would pull a mean over seeds toward zero, and a NaN would poison
    averages and JSON logs); callers leave such a cell out and say how many values remained.
    """
    for name, value in (("acc_task", acc_task), ("acc_switch", acc_switch)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {value!r}")
    if acc_task == 0.0:
        return None
    return (acc_task - acc_switch) / acc_task


def task_forgetting(evals: dict, cfg: RunConfig, task: str, which: str) -> tuple:
    """(during, post, forgetting) for `task`; which = "local" or "joint"; None where not measured."""
    first = next(k for k, p in enumerate(cfg.phases) if task in p.task_names())
    last = len(cfg.phases) - 1
    key = f"{which}_accuracy"
    during = evals.get(f"phase{first}_end", {}).get(task, {}).get(key)
    post = evals.get(f"phase{last}_end", {}).get(task, {}).get(key) if last > first else None
    forget = forgetting_rate(during, post) if during is not None and post is not None else None
    return during, post, forget
