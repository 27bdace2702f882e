"""Forgetting against hand-computed numbers: the rate, and a task's (during, post, forgetting) in a run.

forgetting_rate = (acc_task - acc_switch) / acc_task, None (undefined) when acc_task == 0.
"""

import pytest

from trainer.forgetting import forgetting_rate, task_forgetting

THREE_PHASES = 'phases=[{tasks=["math"], steps=1, tau=0.2}, {tasks=["code"], steps=1, tau=0.2}, ' \
               '{tasks=["science"], steps=1, tau=0.2}]'


def _evals(**acc):  # tag -> {task: accuracy}, both response kinds the same unless local is given
    return {tag: {t: {"joint_accuracy": a, "local_accuracy": a} for t, a in tasks.items()}
            for tag, tasks in acc.items()}


def test_during_is_the_phase_that_trains_the_task_and_post_the_last_phase(tiny_cfg):
    cfg = tiny_cfg(THREE_PHASES)
    evals = _evals(phase0_end={"math": 0.8}, phase1_end={"math": 0.6, "code": 0.5},
                   phase2_end={"math": 0.4, "code": 0.25})
    assert task_forgetting(evals, cfg, "math", "joint") == (0.8, 0.4, pytest.approx(0.5))  # (0.8-0.4)/0.8
    assert task_forgetting(evals, cfg, "code", "joint") == (0.5, 0.25, pytest.approx(0.5))  # during = phase 1


def test_a_task_of_the_last_phase_or_a_missing_value_has_no_forgetting(tiny_cfg):
    cfg = tiny_cfg(THREE_PHASES)
    evals = _evals(phase0_end={"math": 0.8}, phase2_end={"science": 0.7})
    evals["phase0_end"]["math"]["local_accuracy"] = None  # every response asked for help
    assert task_forgetting(evals, cfg, "science", "joint") == (0.7, None, None)
    assert task_forgetting(evals, cfg, "math", "joint") == (0.8, None, None)  # not evaluated at the end
    assert task_forgetting(evals, cfg, "math", "local") == (None, None, None)


def test_rate_hand_computed():
    assert forgetting_rate(0.8, 0.6) == pytest.approx(0.25)
    assert forgetting_rate(0.5, 0.5) == 0.0
    assert forgetting_rate(0.4, 0.0) == 1.0


def test_improvement_is_negative_forgetting():
    assert forgetting_rate(0.5, 0.6) == pytest.approx(-0.2)


def test_zero_task_accuracy_is_undefined():
    assert forgetting_rate(0.0, 0.0) is None
    assert forgetting_rate(0.0, 0.3) is None


@pytest.mark.parametrize("acc_task, acc_switch", [(-0.1, 0.5), (1.2, 0.5), (0.5, 1.5), (0.5, -1)])
def test_out_of_range_is_refused(acc_task, acc_switch):
    with pytest.raises(ValueError, match="acc_"):
        forgetting_rate(acc_task, acc_switch)
