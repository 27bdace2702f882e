"""Percentiles and ratios against hand-computed values."""

import pytest

from deploy.stats import percentile, ratio


@pytest.mark.parametrize("values, q, expected", [
    ([1, 2, 3, 4], 50, 2.5),  # position 1.5: halfway between 2 and 3
    ([4, 1, 3, 2], 50, 2.5),  # order does not matter
    ([1, 2, 3, 4], 0, 1.0),
    ([1, 2, 3, 4], 100, 4.0),
    ([10, 20], 99, 19.9),  # position 0.99: 10 + 0.99 * 10
    ([0.5, 1.0, 1.5, 2.0, 10.0], 90, 6.8),  # position 3.6: 2 + 0.6 * 8
    ([7.0], 99, 7.0),
])
def test_percentile_interpolates_between_closest_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_q_is_checked():
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="q must lie in"):
        percentile([1.0], 101)


def test_ratio():
    assert ratio(1, 4) == 0.25
    assert ratio(0, 3) == 0.0
    assert ratio(0, 0) is None
