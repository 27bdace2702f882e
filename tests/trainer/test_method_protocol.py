"""Every training method lives in trainer/methods/ and answers the whole `Method` protocol."""

import inspect

import numpy as np
import pytest

from trainer.config import TrainConfig
from trainer.methods import METHODS, Method, make_method

TRAINED = [m for m in METHODS if m != "cloud_only"]


@pytest.mark.parametrize("name", TRAINED)
def test_each_method_has_every_member_of_the_protocol(name):
    method = make_method(TrainConfig(method=name))
    for member in ("begin_step", "advantages", "end_step", "state_dict", "load_state_dict"):
        assert inspect.signature(getattr(method, member)).parameters.keys() == \
            {k: v for k, v in inspect.signature(getattr(Method, member)).parameters.items() if k != "self"}.keys()
    assert isinstance(method.name, str) and isinstance(method.updates_lambda, bool)
    state = method.state_dict()
    method.load_state_dict(state)  # a checkpoint's state goes back in as it came out
    assert method.state_dict() == state


def test_a_stateless_method_refuses_state_it_never_had():
    method = make_method(TrainConfig(method="grpo_fixed"))
    with pytest.raises(ValueError, match="keeps no state"):
        method.load_state_dict({"running": 0.3})


def test_da_grpo_is_a_module_of_trainer_methods_and_ignores_the_step():
    method = make_method(TrainConfig(method="da_grpo"))
    assert type(method).__module__ == "trainer.methods.da_grpo" and method.updates_lambda
    method.begin_step(None, task="math", tau=0.3)
    r, c = np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])
    assert method.advantages(r, c, 0.5).tolist() == [[0.25, -0.25]]  # (0.5 - 0.5*0.5, -(...)) by hand
