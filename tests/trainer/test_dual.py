"""The projected dual update (paper eq. 3) and the lambda controllers against hand-computed numbers."""

import json
import math

import pytest

from trainer.config import TrainConfig
from trainer.dual import AscentController, PidController, controller_from_dict, dual_update, make_controller


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


# --- lambda controllers (trainer/dual.py) ---------------------------------------------------------

def test_ascent_controller_is_the_paper_update():
    c = AscentController(0.5, 0.01)
    assert c.update(0.6, 0.3) == pytest.approx(0.503)
    assert c.update(0.1, 0.3) == pytest.approx(0.501)  # 0.503 - 0.01 * 0.2
    assert c.lam == pytest.approx(0.501)


def test_pid_hand_computed_sequence():
    # kp 1, ki 0.1, kd 0.5, warm start lambda 0.5 -> integral 5
    c = PidController(kp=1.0, ki=0.1, kd=0.5, lam_init=0.5)
    assert c.lam == 0.5 and c.integral == pytest.approx(5.0)
    assert c.update(0.6, 0.3) == pytest.approx(0.83)  # e .3, I 5.3, no previous J_c: .3 + .53
    assert c.update(0.8, 0.3) == pytest.approx(1.18)  # e .5, I 5.8, D .2: .5 + .58 + .1
    assert c.update(0.1, 0.3) == pytest.approx(0.36)  # e -.2, I 5.6, falling cost D 0: -.2 + .56


def test_pi_without_proportional_and_derivative_is_ascent():
    pid, asc = PidController(0.0, 0.05, 0.0, lam_init=0.4), AscentController(0.4, 0.05)
    for j, tau in [(0.9, 0.3), (0.1, 0.3), (0.0, 0.7), (0.0, 0.7), (1.0, 0.1)]:
        assert pid.update(j, tau) == pytest.approx(asc.update(j, tau))


def test_pid_cap_and_anti_windup():
    c = PidController(kp=0.0, ki=0.5, kd=0.0, lam_init=0.5, lam_max=1.0)  # integral 1, at most 2
    assert c.update(1.0, 0.0) == pytest.approx(1.0)  # I 2 -> 1.0
    assert c.update(1.0, 0.0) == pytest.approx(1.0)  # I stays 2 (wound up it would be 3)
    assert c.update(0.0, 0.5) == pytest.approx(0.75)  # I 1.5: unwinds at once (wound up: 2.5 -> still 1.0)
    low = PidController(kp=0.0, ki=0.1, kd=0.0, lam_init=0.02)  # integral 0.2
    assert low.update(0.0, 0.3) == 0.0  # I max(0, -0.1) = 0
    assert low.update(0.4, 0.3) == pytest.approx(0.01)  # I 0.1 (a negative integral would still be < 0)


def test_controller_state_round_trip_continues_exactly():
    for c in (PidController(1.0, 0.1, 0.5, lam_init=0.5, lam_max=3.0), AscentController(0.7, 0.02)):
        c.update(0.6, 0.3)
        twin = controller_from_dict(json.loads(json.dumps(c.to_dict())))
        for j in (0.9, 0.2, 0.4):
            assert twin.update(j, 0.3) == c.update(j, 0.3)
        assert twin.to_dict() == c.to_dict()
    inf = PidController(0.0, 0.1, 0.0, lam_init=0.5)  # an infinite cap survives JSON too
    assert controller_from_dict(json.loads(json.dumps(inf.to_dict()))).lam_max == math.inf


def test_make_controller_from_train_config():
    assert isinstance(make_controller(TrainConfig()), AscentController)
    c = make_controller(TrainConfig(lambda_controller="pid", pid_kp=0.3, eta_lambda=0.05, lambda_init=0.2))
    assert (c.kp, c.ki, c.lam, c.lam_max) == (0.3, 0.05, 0.2, 2.0)
    with pytest.raises(ValueError, match="K_i"):
        TrainConfig(lambda_controller="pid", eta_lambda=0.0)
    with pytest.raises(ValueError, match="lambda_max"):
        TrainConfig(lambda_controller="pid", lambda_init=3.0)


def test_tracked_flavour_sets_defaults_that_stay_overridable():
    paper = TrainConfig()
    assert (paper.cost_baseline, paper.lambda_controller, paper.skip_zero_steps) == ("group", "ascent", False)
    tracked = TrainConfig(method="da_grpo_tracked")
    assert (tracked.cost_baseline, tracked.lambda_controller, tracked.skip_zero_steps) == ("tau", "pid", True)
    assert TrainConfig(method="da_grpo_tracked", cost_baseline="running").cost_baseline == "running"
