"""The projected dual update (paper eq. 3) against hand-computed numbers."""

import pytest

from trainer.dual import dual_update


def test_rises_when_over_budget_and_falls_when_under():
    assert dual_update(0.5, 0.6, 0.3, 0.01) == pytest.approx(0.503)  # 0.5 + 0.01 * 0.3
    assert dual_update(0.5, 0.1, 0.3, 0.01) == pytest.approx(0.498)  # 0.5 - 0.01 * 0.2
    assert dual_update(0.5, 0.3, 0.3, 0.01) == pytest.approx(0.5)


def test_projection_onto_nonnegative_reals():
    assert dual_update(0.001, 0.0, 0.3, 0.01) == 0.0  # 0.001 - 0.003 < 0 -> 0
    assert dual_update(0.0, 0.0, 1.0, 5.0) == 0.0


def test_rejects_bad_tau_and_lr():
    with pytest.raises(ValueError, match="tau"):
        dual_update(0.5, 0.2, 1.5, 0.01)
    with pytest.raises(ValueError, match="learning rate"):
        dual_update(0.5, 0.2, 0.3, -1.0)
