"""The verl-facing pieces: the trigger cut (pure), verl's own estimators on our shaped rewards, and
the reward manager on a real DataProto. The verl tests skip with the reason when verl is absent
(it is not installed in the project venv: it pins transformers < 5.11, docs/verl.md)."""

from __future__ import annotations

import numpy as np
import pytest

from integrations.verl.reward_manager import trigger_cut
from trainer.advantages import dual_advantages

from .verl_batch import HELP


def test_trigger_cut_is_the_shortest_prefix_with_the_trigger():
    words = (HELP + " more words after it").split(" ")
    decode = lambda ids: " ".join(words[i] for i in ids)  # noqa: E731 one "token" per word
    ids = list(range(len(words)))
    cut = trigger_cut(ids, decode)
    assert decode(ids[:cut]).endswith("I need external assistance.") and "more" not in decode(ids[:cut])
    assert trigger_cut(ids[:3], decode) is None


def test_verl_grpo_without_std_is_the_dual_advantage():
    """Proposition B.1 through verl's registered estimators: grpo (norm_adv_by_std_in_grpo=False) on
    r - lambda*c equals trainer.advantages.dual_advantages; rloo equals it times G/(G-1)."""
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl is not installed (dagrpo[verl])")
    import torch

    rng = np.random.default_rng(0)
    B, G, T, lam = 3, 4, 5, 0.7
    r = rng.choice([1.0, 0.0, -0.1], size=(B, G))
    c = rng.choice([0.0, 1.0], size=(B, G))
    uids = np.array([f"u{b}" for b in range(B) for _ in range(G)], dtype=object)
    lengths = rng.integers(1, T + 1, size=B * G)
    mask = torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths])
    tlr = torch.zeros(B * G, T)
    tlr[torch.arange(B * G), torch.tensor(lengths - 1)] = torch.tensor((r - lam * c).reshape(-1), dtype=torch.float32)
    grpo = core_algos.get_adv_estimator_fn("grpo")
    adv, _ = grpo(token_level_rewards=tlr, response_mask=mask, index=uids, norm_adv_by_std_in_grpo=False)
    want = dual_advantages(r, c, lam).reshape(-1)
    np.testing.assert_allclose(adv.numpy(), want[:, None] * mask.numpy(), atol=1e-6)
    rloo, _ = core_algos.get_adv_estimator_fn("rloo")(token_level_rewards=tlr, response_mask=mask, index=uids)
    np.testing.assert_allclose(rloo.numpy(), G / (G - 1) * want[:, None] * mask.numpy(), atol=1e-6)


def test_reward_manager_on_a_dataproto(tmp_path):
    protocol = pytest.importorskip("verl.protocol", reason="verl is not installed (dagrpo[verl])")
    import torch

    from collab.tasks import get_task
    from integrations.verl.reward_manager import DagrpoRewardManager

    class WordTokenizer:  # one token per space-separated word
        def __init__(self, texts):
            self.vocab = sorted({w for t in texts for w in t.split(" ")})

        def encode(self, text):
            return [self.vocab.index(w) + 1 for w in text.split(" ")]

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(self.vocab[i - 1] for i in ids if i > 0)

    ex = get_task("math").examples("train", n=1, seed=0)[0]
    texts = [HELP + " tail", f"<think>\nStep 1: Add.\n</think>\n<answer>Final answer: \\boxed{{{ex.answer}}}</answer>"]
    tok = WordTokenizer(texts)
    T = max(len(tok.encode(t)) for t in texts)
    ids = torch.tensor([tok.encode(t) + [0] * (T - len(tok.encode(t))) for t in texts])
    mask = (ids > 0).long()
    data = protocol.DataProto.from_dict(
        tensors={"responses": ids, "response_mask": mask.clone(), "prompts": torch.zeros(2, 1, dtype=torch.long),
                 "attention_mask": torch.cat([torch.ones(2, 1, dtype=torch.long), mask], 1)},
        non_tensors={"uid": np.array(["g", "g"], dtype=object),
                     "extra_info": np.array([{"example_id": ex.id, "task": ex.task}] * 2, dtype=object)})
    manager = DagrpoRewardManager(tok, 0, None, state_dir=str(tmp_path / "s"), tau=0.1,
                                  cloud={"backend": "reference", "accuracy": 1.0})
    out = manager(data, return_dict=True)
    reward = out["reward_tensor"]
    assert reward.sum(-1).tolist() == pytest.approx([1.0 - 0.5, 1.0])  # r - lambda*c, lambda_init 0.5
    cut = len(tok.encode(HELP))
    assert data.batch["response_mask"][0].tolist() == [1] * cut + [0] * (T - cut)  # "tail" carries no gradient
    assert reward[0, cut - 1] == pytest.approx(0.5)
