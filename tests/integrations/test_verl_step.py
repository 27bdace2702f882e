"""The verl reward manager's step logic against the trainer's own functions on the same batch.

Fake cloud here (the reference backend in process, no meter); the real gateway is in
test_verl_gateway.py. Numbers by hand: group 0 = [help, wrong, right, broken-format trigger]
-> r = [1 (cloud right), 0, 1, -0.1], c = [1, 0, 0, 0]; group 1 = [wrong, wrong, help, right]
-> r = [0, 0, 1, 1], c = [0, 0, 1, 0]; J_c_hat = 2/8.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from integrations.verl.config import DagrpoVerlConfig, load
from integrations.verl.driver import DualRewardLoop
from integrations.verl.step import group_keys, group_rows, score_batch, shaped_rewards
from trainer.advantages import dual_advantages
from trainer.cloud import InProcessCloud
from trainer.dual import make_controller
from trainer.prompting import messages

from .verl_batch import batch


def cfg(tmp_path, **kw) -> DagrpoVerlConfig:
    return load({"state_dir": str(tmp_path / "state"), "tau": 0.1, "eta_lambda": 0.5, **kw})


def group_centre(values, uids) -> np.ndarray:
    """What verl's GRPO (norm_adv_by_std_in_grpo=False) does to a sequence reward: x - mean_uid x."""
    out = np.empty(len(values))
    for rows in group_rows(uids):
        out[rows] = values[rows] - np.mean(values[rows])
    return out


def test_group_rows_and_keys():
    assert group_rows(["b", "a", "b", "c", "a"]) == [[0, 2], [1, 4], [3]]
    assert group_keys(["x", "y", "x"], "train/3") == ["train/3/x/0", "train/3/y/0", "train/3/x/1"]


class CountingCloud(InProcessCloud):
    calls = 0

    def assist(self, *args, **kwargs):
        self.calls += 1
        return super().assist(*args, **kwargs)


def test_score_batch_by_hand():
    examples, _, ex_rows, texts, uids, order = batch()
    cloud = CountingCloud(accuracy=1.0)
    scores = score_batch(cloud, ex_rows, texts, uids, "train/1")
    r_flat = np.array([1, 0, 1, -0.1, 0, 0, 1, 1])[order]
    c_flat = np.array([1, 0, 0, 0, 0, 0, 1, 0])[order]
    assert scores.rewards.tolist() == pytest.approx(r_flat.tolist())
    assert scores.costs.tolist() == c_flat.tolist()
    assert (scores.queries, scores.refused, cloud.calls) == (2, 0, 2)  # one Assist per group that asked
    assert shaped_rewards(scores.rewards, scores.costs, 0.5).tolist() == pytest.approx((r_flat - 0.5 * c_flat).tolist())


@pytest.mark.parametrize("accuracy", [1.0, 0.0])
def test_same_numbers_as_the_trainer(tmp_path, accuracy):
    """Rewards, costs, advantages (after verl's group centring) and lambda equal trainer/step.py's."""
    from trainer.step import collect

    examples, texts, ex_rows, flat_texts, uids, order = batch()
    c = cfg(tmp_path, cloud={"backend": "reference", "accuracy": accuracy})
    loop = DualRewardLoop(c, cloud=InProcessCloud(accuracy=accuracy))
    result = loop.train_step(ex_rows, flat_texts, uids)

    ctx = types.SimpleNamespace(cloud=InProcessCloud(accuracy=accuracy), messages=messages,
                                cfg=types.SimpleNamespace(train=types.SimpleNamespace(math_grader="exact")))
    rollouts = [[types.SimpleNamespace(text=t) for t in g] for g in texts]
    scored, queries, _ = collect(ctx, examples, rollouts, key="train/1")
    rewards = np.array([[s.reward for s in g] for g in scored])
    costs = np.array([[s.cost for s in g] for g in scored])
    adv = dual_advantages(rewards, costs, c.lambda_init).reshape(-1)[order]  # (B*G,) in verl's row order
    assert result.scores.rewards.tolist() == rewards.reshape(-1)[order].tolist()
    assert result.scores.costs.tolist() == costs.reshape(-1)[order].tolist()
    assert result.scores.queries == queries
    np.testing.assert_allclose(group_centre(result.shaped, uids), adv, rtol=0, atol=1e-12)

    dual = make_controller(c)
    device_ratio = sum(s.help_request for g in scored for s in g) / 8
    assert (result.lam, result.lam_next) == (0.5, dual.update(device_ratio, 0.1))
    assert result.lam_next == pytest.approx(0.5 + 0.5 * (2 / 8 - 0.1))
    assert loop.lam == result.lam_next


def test_lambda_state_resumes_at_verls_checkpoint(tmp_path):
    _, _, ex_rows, texts, uids, _ = batch()
    c = cfg(tmp_path, checkpoint_dir=str(tmp_path / "ckpt"))
    loop = DualRewardLoop(c, cloud=InProcessCloud(accuracy=1.0))
    lams = [loop.train_step(ex_rows, texts, uids).lam_next for _ in range(3)]
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("2")  # verl saved after step 2
    resumed = DualRewardLoop(c, cloud=InProcessCloud(accuracy=1.0))
    assert (resumed.step, resumed.lam, resumed.run_id) == (2, lams[1], loop.run_id)
    assert resumed.train_step(ex_rows, texts, uids).lam_next == lams[2]


def test_a_used_state_dir_without_a_checkpoint_is_refused(tmp_path):
    _, _, ex_rows, texts, uids, _ = batch()
    DualRewardLoop(cfg(tmp_path), cloud=InProcessCloud()).train_step(ex_rows, texts, uids)
    with pytest.raises(ValueError, match="holds the lambda state of another run"):
        DualRewardLoop(cfg(tmp_path), cloud=InProcessCloud())


def test_validation_never_moves_lambda(tmp_path):
    _, _, ex_rows, texts, uids, _ = batch()
    loop = DualRewardLoop(cfg(tmp_path), cloud=InProcessCloud(accuracy=1.0))
    scores = loop.validate(ex_rows, texts, uids)
    assert loop.lam == 0.5 and loop.step == 0 and scores.costs.sum() == 2


def test_config_fails_loudly(tmp_path):
    with pytest.raises(ValueError, match="tau is required"):
        load({"state_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="the gateway owns tau"):
        load({"state_dir": str(tmp_path), "tau": 0.1, "cloud": {"backend": "gateway", "address": "x:1"}})
    with pytest.raises(ValueError, match="extra"):
        load({"state_dir": str(tmp_path), "tau": 0.1, "lamda_init": 1.0})


def test_groups_of_mixed_examples_are_refused():
    examples, _, ex_rows, texts, _, _ = batch()
    with pytest.raises(ValueError, match="groups rows of different examples"):
        score_batch(InProcessCloud(), ex_rows, texts, ["one"] * 8, "train/1")
