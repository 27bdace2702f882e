"""The verl-facing pieces against the installed verl (0.9.1, `make test-verl`): the trigger cut (pure),
verl's own estimators on our shaped rewards, the shipped config composed by Hydra on verl's
config, and the batch reward on a real DataProto through a real gateway on loopback. The verl
tests skip with the reason where verl is not installed (the project venv: verl pins
transformers < 5.11, docs/verl.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from integrations.verl.reward_manager import trigger_cut
from trainer.advantages import dual_advantages

from .verl_batch import HELP, HELP_TAIL, batch

# Skip only where verl is absent: with verl present, a missing dependency of it fails the test.
needs_verl = pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="verl is not installed in this "
                                "venv: `make test-verl` builds .venv-verl and runs these tests there")
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "verl"


def test_trigger_cut_is_the_shortest_prefix_with_the_trigger():
    words = (HELP + " more words after it").split(" ")
    decode = lambda ids: " ".join(words[i] for i in ids)  # noqa: E731 one "token" per word
    ids = list(range(len(words)))
    cut = trigger_cut(ids, decode)
    assert decode(ids[:cut]).endswith("I need external assistance.") and "more" not in decode(ids[:cut])
    assert trigger_cut(ids[:3], decode) is None


@needs_verl
def test_verl_grpo_without_std_is_the_dual_advantage():
    """Proposition B.1 through verl's registered estimators: grpo (norm_adv_by_std_in_grpo=False) on
    r - lambda*c equals trainer.advantages.dual_advantages; rloo equals it times G/(G-1)."""
    import torch
    from verl.trainer.ppo import core_algos

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


def _leaves(cfg, prefix=""):
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _leaves(v, path + ".")
        else:
            yield path


@needs_verl
def test_the_config_composes_on_verl_and_names_loadable_classes():
    import asyncio

    import verl.trainer.config
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.utils.import_utils import load_class_from_fqn, load_extern_object

    # Every key we set is one of verl's (a typo would be a new key Hydra adds silently). The one
    # exception is a field of verl's AgentLoopConfig dataclass that its yaml leaves out.
    ours = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dagrpo_grpo.yaml"))
    ours = {k: v for k, v in ours.items() if k not in ("hydra", "defaults", "dagrpo")}
    verls = OmegaConf.load(Path(verl.trainer.config.__file__).parent / "_generated_ppo_trainer.yaml")
    missing = [k for k in _leaves(ours) if OmegaConf.select(verls, k, default="<missing>") == "<missing>"]
    assert missing == ["actor_rollout_ref.rollout.agent.agent_loop_manager_class"]

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("dagrpo_grpo", overrides=["trainer.default_local_dir=/tmp/ckpt"])
    assert (cfg.algorithm.adv_estimator, cfg.algorithm.norm_adv_by_std_in_grpo) == ("grpo", False)
    assert cfg.actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-sum" and cfg.trainer.use_v1 is False
    assert cfg.dagrpo.state_dir == "/tmp/ckpt/dagrpo"

    manager = load_class_from_fqn(cfg.actor_rollout_ref.rollout.agent.agent_loop_manager_class, "AgentLoopManager")
    assert issubclass(manager, AgentLoopManager)
    rm = cfg.reward.reward_manager
    zero = load_extern_object(module_path=rm.module.path, object_name=rm.name)
    assert issubclass(zero, RewardManagerBase)
    assert asyncio.run(zero(cfg, None, None).run_single(None)) == {"reward_score": 0.0, "reward_extra_info": {}}


class WordTokenizer:  # one token per space-separated word, id 0 = padding
    def __init__(self, texts):
        self.vocab = sorted({w for t in texts for w in t.split(" ")})

    def encode(self, text):
        return [self.vocab.index(w) + 1 for w in text.split(" ")]

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.vocab[i - 1] for i in ids if i > 0)


def _rollout(protocol, tok, ex_rows, texts, uids, meta):
    """verl's rollout output (agent_loop.py `_postprocess`: 1 prompt token, right-padded responses)
    and the prompt rows it answers (uid, extra_info, meta_info)."""
    import torch

    T = max(len(tok.encode(t)) for t in texts)
    ids = torch.tensor([tok.encode(t) + [0] * (T - len(tok.encode(t))) for t in texts])
    mask = (ids > 0).long()
    n = len(texts)
    output = protocol.DataProto.from_dict(
        tensors={"prompts": torch.ones(n, 1, dtype=torch.long), "responses": ids, "response_mask": mask.clone(),
                 "attention_mask": torch.cat([torch.ones(n, 1, dtype=torch.long), mask], 1),
                 "rm_scores": torch.zeros(n, T)})  # ZeroRewardManager's
    prompts = protocol.DataProto.from_dict(
        tensors={"input_ids": torch.ones(n, 1, dtype=torch.long)},
        non_tensors={"uid": np.array(uids, dtype=object),
                     "extra_info": np.array([{"example_id": e.id, "task": e.task} for e in ex_rows], dtype=object)},
        meta_info=meta)
    return output, prompts


@needs_verl
@pytest.mark.integration
def test_batch_reward_on_a_dataproto_through_the_gateway(gateway, keys, tmp_path):
    from verl import protocol

    from collab.gateway_client import AdminClient
    from integrations.verl.reward_manager import DagrpoBatchReward

    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    _, _, ex_rows, texts, uids, _ = batch()
    tok = WordTokenizer(texts)
    reward = DagrpoBatchReward(tok, {"state_dir": str(tmp_path / "s"), "eta_lambda": 0.5,
                                     "cloud": {"backend": "gateway", "address": gateway.address,
                                               "api_key": keys.d1}})
    output, prompts = _rollout(protocol, tok, ex_rows, texts, uids, {"global_steps": 1})
    reward(output, prompts)

    r, c = output.non_tensor_batch["dagrpo_reward"], output.non_tensor_batch["dagrpo_cost"]
    np.testing.assert_allclose(output.batch["rm_scores"].sum(-1).numpy(), r - 0.5 * c, atol=1e-6)
    assert c.sum() == 2 and (r[c == 1] == 1.0).all()  # two help requests; the gateway's cloud answers right
    assert set(output.meta_info["reward_extra_keys"]) >= {"dagrpo_reward", "dagrpo_cost", "dagrpo_lambda"}
    tail = texts.index(HELP_TAIL)
    cut = len(tok.encode(HELP))
    assert output.batch["response_mask"][tail].tolist()[:cut + 1] == [1] * cut + [0]  # the tail: no gradient
    assert output.batch["rm_scores"][tail, cut - 1] == pytest.approx(0.5)
    assert reward.loop.lam == pytest.approx(0.5 + 0.5 * (2 / 8 - 0.1))  # the gateway's ratio and tau
    d1 = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (d1.responses, d1.help_requests) == (8, 2)

    val_out, val_prompts = _rollout(protocol, tok, ex_rows, texts, uids, {"validate": True, "global_steps": 1})
    reward(val_out, val_prompts)
    np.testing.assert_allclose(val_out.batch["rm_scores"].sum(-1).numpy(), r, atol=1e-6)  # r, not shaped
    assert val_out.batch["response_mask"].sum() == output.batch["attention_mask"][:, 1:].sum()  # nothing cut
    assert reward.loop.lam == pytest.approx(0.5 + 0.5 * (2 / 8 - 0.1))  # validation never moves lambda

    with pytest.raises(ValueError, match="verl runs step 5, the lambda state is at step 1"):
        reward(*_rollout(protocol, tok, ex_rows, texts, uids, {"global_steps": 5}))


@needs_verl
def test_the_rollout_manager_scores_what_verl_rolled_out(monkeypatch, tmp_path):
    """Called the way RayPPOTrainer calls it (synchronously, through verl's auto_await): verl's own
    rollout (here a stand-in for the Ray workers and vLLM) and then the batch reward on its output."""
    from omegaconf import OmegaConf
    from verl import protocol
    from verl.experimental.agent_loop import AgentLoopManager

    from integrations.verl import agent_loop
    from integrations.verl.reward_manager import DagrpoBatchReward

    _, _, ex_rows, texts, uids, _ = batch()
    tok = WordTokenizer(texts)
    rolled, prompts = _rollout(protocol, tok, ex_rows, texts, uids, {"global_steps": 1})

    async def verl_rollout(self, p):
        assert p is prompts
        return rolled

    monkeypatch.setattr(AgentLoopManager, "generate_sequences", verl_rollout)
    manager = object.__new__(agent_loop.DagrpoAgentLoopManager)  # no Ray workers, no model
    manager.dagrpo = DagrpoBatchReward(tok, {"state_dir": str(tmp_path / "s"), "tau": 0.1,
                                             "cloud": {"backend": "reference", "accuracy": 1.0}})
    out = manager.generate_sequences(prompts)
    assert out is rolled and out.batch["rm_scores"].abs().sum() > 0 and manager.dagrpo.loop.step == 1

    with pytest.raises(ValueError, match="trainer.use_v1=false"):
        agent_loop.batch_reward(OmegaConf.create({"trainer": {"use_v1": True}}))
