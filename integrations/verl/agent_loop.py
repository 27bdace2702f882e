"""The two classes verl loads by name (configs/verl/dagrpo_grpo.yaml); the only module that imports verl.

verl 0.9.1 scores each trajectory alone, in its Ray reward workers (`RewardManagerBase.run_single`),
while rollouts stream. DA-GRPO needs the whole batch at once (one cloud call per uid group, one
usage report and one dual update per step) and one lambda that lives across steps. So:

  DagrpoAgentLoopManager  verl's rollout manager (`actor_rollout_ref.rollout.agent.agent_loop_manager_class`),
                          held by the trainer in its driver process: after verl's own rollout it scores
                          the whole batch (reward_manager.DagrpoBatchReward), writing `rm_scores`, which
                          the trainer reads as the reward, and the cut `response_mask`.
  ZeroRewardManager       the per-trajectory reward verl's workers still compute (`reward.reward_manager`):
                          a constant 0 that the batch reward replaces; verl's default rule scorers do
                          not know our data sources and would raise.

The rollout manager of verl's V1 trainer writes into TransferQueue instead of returning the batch,
so the config runs the PPO trainer of `verl/trainer/ppo/ray_trainer.py` (`trainer.use_v1=false`).
"""

from __future__ import annotations

from omegaconf import OmegaConf
from verl.experimental.agent_loop import AgentLoopManager
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.utils import hf_tokenizer
from verl.utils.fs import copy_to_local
from verl.utils.ray_utils import auto_await

from integrations.verl.reward_manager import DagrpoBatchReward


class ZeroRewardManager(RewardManagerBase):
    def __init__(self, config, tokenizer, compute_score=None, **_):  # reward_router_address etc.: unused
        super().__init__(config, tokenizer, compute_score)

    async def run_single(self, data) -> dict:
        return {"reward_score": 0.0, "reward_extra_info": {}}


def batch_reward(config) -> DagrpoBatchReward:
    """The batch reward from the whole verl config: the policy's tokenizer and the `dagrpo` section."""
    if config.trainer.get("use_v1", True):
        raise ValueError("DA-GRPO's rollout manager needs trainer.use_v1=false (module docstring)")
    model = config.actor_rollout_ref.model
    tokenizer = hf_tokenizer(copy_to_local(model.get("tokenizer_path") or model.path),
                             trust_remote_code=model.get("trust_remote_code", False))
    return DagrpoBatchReward(tokenizer, OmegaConf.to_container(config.dagrpo, resolve=True))


class DagrpoAgentLoopManager(AgentLoopManager):
    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.dagrpo = batch_reward(config)

    @auto_await
    async def generate_sequences(self, prompts):
        output = await super().generate_sequences(prompts)
        self.dagrpo(output, prompts)
        return output
