"""Confidence intervals (trainer/intervals.py) against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from trainer.intervals import binomial_gap_floor, t_central_prob, t_interval, t_quantile, wilson_interval, within_share


def test_wilson_hand_computed():
    # k=3, n=10, z=1.96: centre (0.3 + 1.9208/10) / 1.38415 = 0.35550,
    # half 1.96 * sqrt(0.021 + 0.0096040) / 1.38415 = 0.24772
    lo, hi = wilson_interval(3, 10, z=1.96)
    assert lo == pytest.approx(0.10779, abs=1e-4) and hi == pytest.approx(0.60322, abs=1e-4)
    # k=0: the interval starts at 0 and has width z^2/(n+z^2) = 3.8416/13.8416
    lo, hi = wilson_interval(0, 10, z=1.96)
    assert lo == 0.0 and hi == pytest.approx(3.8416 / 13.8416, abs=1e-6)
    lo, hi = wilson_interval(10, 10, z=1.96)
    assert lo == pytest.approx(1 - 3.8416 / 13.8416, abs=1e-6) and hi == pytest.approx(1.0)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_t_cdf_closed_forms():
    # df=1 is Cauchy: P(|T|<1) = 2 atan(1) / pi = 0.5; df=2: t / sqrt(2 + t^2)
    assert t_central_prob(1.0, 1) == pytest.approx(0.5)
    assert t_central_prob(2.0, 2) == pytest.approx(2 / math.sqrt(6))


@pytest.mark.parametrize("df,table", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_t_quantile_matches_the_printed_table(df, table):
    assert t_quantile(df) == pytest.approx(table, abs=5e-4)


def test_t_interval_hand_computed():
    # values 1, 2, 3: mean 2, sd 1, half-width t_{0.975,2} * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    mean, half, n = t_interval([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(2.4841, abs=1e-3)
    assert t_interval([0.4]) == (0.4, None, 1)


def test_within_share():
    assert within_share([0.25, 0.31, 0.5, 0.2], 0.3) == 0.75  # 0.2 is exactly 0.1 away: inside


def test_binomial_gap_floor_by_hand():
    assert binomial_gap_floor(1, 0.3) == pytest.approx(0.3 * 0.7 + 0.7 * 0.3)  # K = 1 or 0
    assert binomial_gap_floor(2, 0.5) == pytest.approx(0.25 * 0.5 * 2)  # K = 0, 2: |.| = 0.5
    assert binomial_gap_floor(8, 0.5) == pytest.approx(280 / 256 / 8)  # sum C(8,k) |k - 4| = 280
    assert binomial_gap_floor(5, 0.0) == 0.0 and binomial_gap_floor(5, 1.0) == 0.0
    with pytest.raises(ValueError):
        binomial_gap_floor(0, 0.3)
