"""hash_uniform: one fixed number in [0, 1) per string (pinned values: a changed formula fails here)."""

from trainer.hashdraw import hash_uniform
from trainer.methods.routing import uniform_draw


def test_pinned_values_of_the_router_and_the_reference_cloud_keys():
    assert hash_uniform("route:0:a") == 0.6787262140473207  # naive router, seed 0, example "a"
    assert hash_uniform("0:a") == 0.6170009362330673  # reference cloud, seed 0, key "a"
    assert uniform_draw(0, "a") == hash_uniform("route:0:a")


def test_draws_lie_in_the_unit_interval_and_spread():
    draws = [hash_uniform(f"k{i}") for i in range(2000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(sum(d < 0.3 for d in draws) / len(draws) - 0.3) < 0.05
