"""Reward r (eq. 13), cost c (eq. 14) and the shaped reward of eq. 12, from hand-computed numbers."""

import pytest

from collab.rewards import ALPHA_A, ALPHA_C, ALPHA_F, cost, reward


def test_paper_constants():
    assert (ALPHA_A, ALPHA_F, ALPHA_C) == (1.0, 0.1, 1.0)


@pytest.mark.parametrize(
    "correct, format_ok, expected",
    [(True, True, 1.0), (False, True, 0.0), (True, False, -0.1), (False, False, -0.1)],
)
def test_reward_eq13(correct, format_ok, expected):
    assert reward(correct, format_ok) == expected


@pytest.mark.parametrize(
    "asked, format_ok, expected",
    [(True, True, 1.0), (True, False, 0.0), (False, True, 0.0), (False, False, 0.0)],
)
def test_cost_eq14(asked, format_ok, expected):
    assert cost(asked, format_ok) == expected


LAM = 0.3


@pytest.mark.parametrize(
    "correct, format_ok, asked, expected",
    [
        (True, True, False, 1.0),  # correct, local
        (True, True, True, 0.7),  # correct with cloud: alpha_a - lambda * alpha_c
        (True, False, False, -0.1),  # format violated
        (False, False, True, -0.1),  # format violated, help request ignored (cost 0)
        (False, True, True, -0.3),  # cloud answered wrongly: -lambda * alpha_c
        (False, True, False, 0.0),  # wrong, local
    ],
)
def test_shaped_reward_eq12(correct, format_ok, asked, expected):
    r, c = reward(correct, format_ok), cost(asked, format_ok)
    assert r - LAM * c == pytest.approx(expected)  # eq. 12, the trainer's r - lambda c


def test_custom_alphas():
    assert reward(True, True, alpha_a=2.0) == 2.0
    assert reward(True, False, alpha_f=0.5) == -0.5
    assert cost(True, True, alpha_c=0.25) == 0.25
