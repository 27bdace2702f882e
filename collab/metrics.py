"""Continual-learning metrics (paper section 4: "forgetting rate")."""

from __future__ import annotations


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
