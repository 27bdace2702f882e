"""Dual advantages and std scaling against hand-computed numbers (paper eq. 2, 7)."""

import numpy as np
import pytest

from trainer.advantages import cost_advantages, dual_advantages, ema_update, scale_advantages
from trainer.methods.da_grpo import DaGrpo


def test_lambda_zero_is_centred_grpo():
    # mean r = 0.25 -> [1-0.25, 0-0.25, ...]
    np.testing.assert_allclose(dual_advantages([1, 0, 0, 0], [0, 0, 0, 0], 0.0), [0.75, -0.25, -0.25, -0.25])
    # costs are ignored at lambda = 0
    np.testing.assert_allclose(dual_advantages([1, 0, 0, 0], [1, 1, 0, 0], 0.0), [0.75, -0.25, -0.25, -0.25])


def test_cost_term_with_lambda():
    # A_r = [.5,.5,-.5,-.5], A_c = [.5,-.5,.5,-.5], lambda .5 -> A_r - .5*A_c
    np.testing.assert_allclose(dual_advantages([1, 1, 0, 0], [1, 0, 1, 0], 0.5), [0.25, 0.75, -0.75, -0.25])
    # correct with cloud (r=1,c=1) vs wrong locally (r=0,c=0), lambda 2: shaped 1-2=-1 vs 0 -> [-.5, .5]
    np.testing.assert_allclose(dual_advantages([1, 0], [1, 0], 2.0), [-0.5, 0.5])


def test_constant_groups_give_zero():
    np.testing.assert_array_equal(dual_advantages([1, 1, 1], [1, 1, 1], 0.7), [0, 0, 0])
    np.testing.assert_array_equal(dual_advantages([-0.1] * 4, [0] * 4, 0.5), [0, 0, 0, 0])
    np.testing.assert_array_equal(scale_advantages(np.zeros((2, 3)), "group"), np.zeros((2, 3)))


def test_groups_are_independent_and_equal_centred_shaped_reward():
    r = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=float)
    c = np.array([[0, 1, 1, 0], [1, 0, 0, 0]], dtype=float)
    a = dual_advantages(r, c, 0.3)
    np.testing.assert_allclose(a[0], dual_advantages(r[0], c[0], 0.3))
    np.testing.assert_allclose(a[1], [-0.225, 0.075, 0.075, 0.075])  # -0.3 * ([1,0,0,0] - 0.25)
    shaped = r - 0.3 * c
    np.testing.assert_allclose(a, shaped - shaped.mean(axis=1, keepdims=True))


def test_std_scaling_after_combining():
    a = np.array([0.75, -0.25, -0.25, -0.25])  # population std = sqrt(0.1875)
    np.testing.assert_allclose(scale_advantages(a, "group"), a / np.sqrt(0.1875), rtol=1e-5)
    np.testing.assert_array_equal(scale_advantages(a, "none"), a)
    b = np.array([[1.0, -1.0], [0.5, -0.5]])  # batch std = sqrt((1+1+.25+.25)/4) = sqrt(.625)
    np.testing.assert_allclose(scale_advantages(b, "batch"), b / np.sqrt(0.625), rtol=1e-5)
    np.testing.assert_allclose(scale_advantages(b, "group"), [[1, -1], [1, -1]], rtol=1e-5)
    # DA-GRPO scales the combined advantage, not each term
    np.testing.assert_allclose(DaGrpo("group").advantages(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), 0.5),
                               [[1, -1]], rtol=1e-5)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="lambda"):
        dual_advantages([1, 0], [0, 0], -0.1)
    with pytest.raises(ValueError, match="shape"):
        dual_advantages([1, 0], [0, 0, 0], 0.1)
    with pytest.raises(ValueError, match="std scaling"):
        scale_advantages([1.0, 0.0], "rank")


def test_cost_baselines_hand_computed():
    c = [1, 0, 0, 0]
    np.testing.assert_allclose(cost_advantages(c, "group"), [0.75, -0.25, -0.25, -0.25])
    # tau 0.25, G 4: (G-1)/G * (c - b) = 0.75 * [0.75, -0.25, ...]
    np.testing.assert_allclose(cost_advantages(c, "tau", 0.25), [0.5625, -0.1875, -0.1875, -0.1875])
    np.testing.assert_allclose(cost_advantages(c, "running", 0.25), [0.5625, -0.1875, -0.1875, -0.1875])
    # the all-ask group over budget: zero under the group baseline, a push away from asking under tau
    r, all_ask = [1, 1, 1, 1], [1, 1, 1, 1]
    np.testing.assert_array_equal(dual_advantages(r, all_ask, 0.5), [0, 0, 0, 0])
    np.testing.assert_allclose(dual_advantages(r, all_ask, 0.5, "tau", 0.3), [-0.2625] * 4)  # -.5 * .75 * .7
    # after the estimator's G/(G-1), the cost term is exactly c - b
    np.testing.assert_allclose(3 / 2 * cost_advantages([[1, 1, 0]], "tau", 0.5), [[0.5, 0.5, -0.5]])  # G 3


def test_cost_baseline_errors():
    with pytest.raises(ValueError, match="needs its value"):
        cost_advantages([1, 0], "tau")
    with pytest.raises(ValueError, match="cost baseline"):
        cost_advantages([1, 0], "median", 0.3)
    with pytest.raises(ValueError, match="EMA"):
        ema_update(0.5, 0.3, 1.0)


def test_ema_update():
    assert ema_update(None, 0.4, 0.9) == 0.4  # the first measured ratio starts it
    assert ema_update(0.5, 1.0, 0.9) == pytest.approx(0.55)
    assert ema_update(0.5, 1.0, 0.0) == 1.0


def test_da_grpo_default_is_the_paper_and_options_use_their_baseline():
    r = np.array([[1.0, 0.0, 1.0, 0.0]])
    c = np.array([[1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(DaGrpo().advantages(r, c, 0.7), dual_advantages(r, c, 0.7))
    tau = DaGrpo(cost_baseline="tau")
    with pytest.raises(RuntimeError, match="begin_step"):
        tau.advantages(r, c, 0.7)
    tau.begin_step(tau=0.2)
    np.testing.assert_allclose(tau.advantages(r, c, 1.0), dual_advantages(r, c, 1.0, "tau", 0.2))
    run = DaGrpo(cost_baseline="running", ema=0.5)
    run.begin_step(tau=0.2)
    np.testing.assert_allclose(run.advantages(r, c, 1.0), dual_advantages(r, c, 1.0, "tau", 0.2))  # no ratio yet: tau
    run.end_step(1.0)
    run.end_step(0.0)  # running = 0.5 * 1.0 + 0.5 * 0.0
    assert run.state_dict() == {"running": 0.5}
    np.testing.assert_allclose(run.advantages(r, c, 1.0), dual_advantages(r, c, 1.0, "running", 0.5))
    twin = DaGrpo(cost_baseline="running", ema=0.5)
    twin.load_state_dict(run.state_dict())
    twin.begin_step(tau=0.2)
    np.testing.assert_array_equal(twin.advantages(r, c, 1.0), run.advantages(r, c, 1.0))
