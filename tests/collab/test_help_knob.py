"""The help knob's math, by hand."""

from __future__ import annotations

import math

import pytest

from collab.help_knob import (
    BIAS_LIMIT, BiasController, ask_logit, ask_probability, asks, calibrate_bias, calibrate_bias_sampled, help_rate,
    knob_feedback, rollout_bias, sampled_ask_rate,
)


def test_ask_logit_of_known_probabilities():
    assert ask_logit(math.log(0.5)) == pytest.approx(0.0, abs=1e-12)
    assert ask_logit(math.log(0.2)) == pytest.approx(math.log(0.2 / 0.8))
    assert ask_logit(math.log(0.9)) == pytest.approx(math.log(9.0))
    assert ask_logit(0.0) == math.inf
    assert ask_logit(-800.0) == pytest.approx(-800.0)  # p tiny: logit ~ log p, no underflow
    with pytest.raises(ValueError):
        ask_logit(0.1)


def test_ask_probability_along_a_path():
    # two line starts with p = 0.5 each (logit 0): 1 - 0.5 * 0.5
    assert ask_probability([0.0, 0.0], 0.0) == pytest.approx(0.75)
    # bias log(3) turns p = 0.5 into 0.75 at one line start
    assert ask_probability([0.0], math.log(3)) == pytest.approx(0.75)
    assert ask_probability([], 5.0) == 0.0


def test_calibration_puts_the_bias_between_the_kth_and_next_score():
    scores = [3.0, 1.0, -1.0, -2.0]
    b = calibrate_bias(scores, 0.5)  # k = 2: between 1.0 and -1.0 -> threshold 0 -> bias 0
    assert b == pytest.approx(0.0)
    assert help_rate(scores, b) == 0.5
    b = calibrate_bias(scores, 0.25)  # k = 1: threshold (3 + 1)/2 = 2 -> bias -2
    assert b == pytest.approx(-2.0) and help_rate(scores, b) == 0.25
    assert help_rate(scores, calibrate_bias(scores, 0.0)) == 0.0  # bias -(3+1) = -4
    assert calibrate_bias(scores, 0.0) == pytest.approx(-4.0)
    assert help_rate(scores, calibrate_bias(scores, 1.0)) == 1.0  # bias -(-2-1) = 3
    assert calibrate_bias(scores, 1.0) == pytest.approx(3.0)


def test_calibration_with_queries_that_cannot_ask_and_limits():
    scores = [2.0, -math.inf, -math.inf, -math.inf]
    assert help_rate(scores, calibrate_bias(scores, 0.75)) == 0.25  # -inf never asks
    assert calibrate_bias(scores, 0.75) == BIAS_LIMIT
    assert calibrate_bias([100.0, 90.0], 0.0) == -BIAS_LIMIT  # clipped: 95 is past the limit
    with pytest.raises(ValueError):
        calibrate_bias([], 0.3)
    with pytest.raises(ValueError):
        calibrate_bias([1.0], 1.5)


def test_decision_is_strict():
    assert asks(1.0, -0.5) and not asks(1.0, -1.0)


def test_controller_follows_a_new_tau_through_the_quantile_and_feedback():
    c = BiasController(tau=0.5, gain=0.5, window=4)
    assert c.bias(default=-7.0) == -7.0  # nothing seen yet
    for s in (3.0, 1.0, -1.0, -2.0):
        c.observe_score(s)
    assert c.bias() == pytest.approx(0.0)  # tau 0.5 on the 4 scores
    c.set_tau(0.25)
    assert c.bias() == pytest.approx(-2.0)
    c.observe_ratio(0.45)  # measured above target: integral 0.5 * (0.25 - 0.45) = -0.1
    assert c.integral == pytest.approx(-0.1) and c.tau_eff == pytest.approx(0.15)
    assert c.bias() == pytest.approx(-2.0)  # round(0.15 * 4) = 1: still one query asks
    c.observe_score(5.0)  # window keeps the last 4: [1, -1, -2, 5]
    assert c.scores == [1.0, -1.0, -2.0, 5.0]
    c.set_tau(0.25)  # the same tau keeps the integral
    assert c.integral == pytest.approx(-0.1)
    c.set_tau(0.5)
    assert c.integral == 0.0


def test_sampled_rate_is_the_mean_sigmoid():
    # sigmoid(0) = 1/2, sigmoid(log 3) = 3/4, -inf never asks: (1/2 + 3/4 + 0) / 3
    assert sampled_ask_rate([0.0, math.log(3.0), -math.inf], 0.0) == pytest.approx(1.25 / 3)
    assert sampled_ask_rate([-math.log(3.0)], math.log(3.0)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        sampled_ask_rate([], 0.0)


def test_sampled_calibration_solves_the_mean_sigmoid():
    # one score s: sigmoid(s + b) = tau  <=>  b = logit(tau) - s
    b = calibrate_bias_sampled([-7.0], 0.3)
    assert b == pytest.approx(math.log(0.3 / 0.7) + 7.0, abs=1e-5)
    # two scores 0 and -inf: the rate is sigmoid(b) / 2, so tau 0.25 needs b = 0, tau 0.5 is out of reach
    assert calibrate_bias_sampled([0.0, -math.inf], 0.25) == pytest.approx(0.0, abs=1e-5)
    assert calibrate_bias_sampled([0.0, -math.inf], 0.5) == BIAS_LIMIT
    assert calibrate_bias_sampled([-math.inf], 0.3) == BIAS_LIMIT
    assert calibrate_bias_sampled([1.0, 2.0], 0.0) == -BIAS_LIMIT
    rates = [sampled_ask_rate([-3.0, -1.0, 2.0], calibrate_bias_sampled([-3.0, -1.0, 2.0], t)) for t in (0.1, 0.5, 0.9)]
    assert rates == pytest.approx([0.1, 0.5, 0.9], abs=1e-5)


def test_knob_feedback_is_a_scaled_integral_step():
    # tau 0.5: tau (1 - tau) = 1/4; ratio 0.75 is 1/4 over: gain 1 moves b by -1, gain 0.5 by -0.5
    assert knob_feedback(2.0, 0.75, 0.5, 1.0) == pytest.approx(1.0)
    assert knob_feedback(2.0, 0.75, 0.5, 0.5) == pytest.approx(1.5)
    # below budget the bias rises; tau 0 uses the floor 0.05: ratio 0.1 -> -0.5 * 0.1 / 0.05 = -1
    assert knob_feedback(0.0, 0.1, 0.3, 1.0) == pytest.approx(0.2 / 0.21)
    assert knob_feedback(0.0, 0.1, 0.0, 0.5) == pytest.approx(-1.0)
    assert knob_feedback(0.0, 0.3, 0.3, 1.0) == 0.0
    assert knob_feedback(BIAS_LIMIT, 0.0, 0.5, 1.0) == BIAS_LIMIT
    with pytest.raises(ValueError):
        knob_feedback(0.0, 0.5, 1.5, 1.0)
    with pytest.raises(ValueError):
        knob_feedback(0.0, 0.5, 0.5, -1.0)


def test_rollout_bias_is_the_steps_calibration_plus_the_offset():
    # one finite score -7 at tau 0.3: anchor logit(0.3) + 7; the offset adds; none finite keeps the anchor
    anchor, bias = rollout_bias([-7.0, -math.inf], 0.15, 0.5, anchor=1.0)
    assert anchor == pytest.approx(math.log(0.3 / 0.7) + 7.0, abs=1e-5)
    assert bias == pytest.approx(anchor + 0.5, abs=1e-6)
    assert rollout_bias([-math.inf, -math.inf], 0.3, -0.25, anchor=4.0) == (4.0, 3.75)
    assert rollout_bias([-math.inf], 0.3, 10.0, anchor=45.0) == (45.0, BIAS_LIMIT)


def test_calibrate_bias_paths_solves_the_path_ask_rate():
    from collab.help_knob import calibrate_bias_paths

    # at b = 0 a one-candidate path asks w.p. 1/2, a two-candidate path 1 - 1/4: mean 0.625
    assert calibrate_bias_paths([[0.0], [0.0, 0.0]], 0.625) == pytest.approx(0.0, abs=1e-5)
    # a path with no candidate never asks: the rate is sigmoid(b) / 2, so 0.25 at b = 0 ...
    assert calibrate_bias_paths([[0.0], []], 0.25) == pytest.approx(0.0, abs=1e-5)
    # ... sigmoid(b) / 2 = 0.1 -> sigmoid(b) = 0.2 -> b = log(0.25)
    assert calibrate_bias_paths([[0.0], []], 0.1) == pytest.approx(math.log(0.25), abs=1e-5)
    assert calibrate_bias_paths([[0.0], []], 0.6) == BIAS_LIMIT  # out of reach: the limit
    assert calibrate_bias_paths([[3.0]], 0.0) == -BIAS_LIMIT
    with pytest.raises(ValueError):
        calibrate_bias_paths([], 0.3)


def test_first_ask_is_the_first_candidate_whose_draw_passes():
    from collab.help_knob import first_ask

    assert first_ask([0.0, 0.0], 0.0, [0.7, 0.2]) == 1  # sigmoid(0) = 0.5: 0.7 no, 0.2 yes
    assert first_ask([0.0, 0.0], 0.0, [0.4, 0.9]) == 0
    assert first_ask([0.0, 0.0], 0.0, [0.9, 0.9]) is None
    assert first_ask([-2.0], 2.0, [0.49]) == 0 and first_ask([-2.0], 2.0, [0.51]) is None
    assert first_ask([-math.inf], BIAS_LIMIT, [0.0]) is None
    with pytest.raises(ValueError):
        first_ask([0.0, 0.0], 0.0, [0.1])
