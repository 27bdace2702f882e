"""forgetting_rate = (acc_task - acc_switch) / acc_task, None (undefined) when acc_task == 0."""

import pytest

from collab.metrics import forgetting_rate


def test_hand_computed():
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
