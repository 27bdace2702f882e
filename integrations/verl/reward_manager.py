"""`DagrpoBatchReward`: DA-GRPO's reward over one whole verl rollout batch (docs/verl.md).

integrations/verl/agent_loop.py calls it in verl's driver process on every batch its rollout
manager returns, training (`meta_info["global_steps"]`) and validation (`meta_info["validate"]`).
What it does to the batch (`output`: verl's rollout output, row i answers `prompts` row i):

- rows: response text = the valid response tokens decoded (`attention_mask` over the response);
  the Example from the prompt row's `extra_info` (`example_id`, `task`; integrations/verl/data.py
  writes them); the group = the prompt row's `uid`.
- trained tokens: a response that asked for help keeps its tokens up to and including the trigger;
  the tokens vLLM generated after it are cut from `response_mask` (trainer/train.py departure 3).
  The cloud completion is never in the batch: it carries no gradient.
- reward: `rm_scores` (N, T_resp), zero but r - lambda * c on the last kept token (r on validation
  batches); verl reads it as the token-level score and its GRPO sums it over tokens, so the sum is
  the sequence reward. The per-row values go to `reward_extra_keys` (logged by verl).

Imports torch and numpy only; verl objects are duck-typed (`.batch`, `.non_tensor_batch`, `.meta_info`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from collab.protocol import HELP_TRIGGER
from collab.tasks import get_task_example
from integrations.verl.config import load
from integrations.verl.driver import DualRewardLoop


def trigger_cut(ids: list[int], decode: Callable[[list[int]], str]) -> int | None:
    """Length of the shortest prefix of `ids` whose text contains the trigger (None: no trigger).

    Containment is monotone in the prefix length, so a binary search needs O(log T) decodes."""
    if HELP_TRIGGER not in decode(ids):
        return None
    lo, hi = 1, len(ids)  # decode(ids[:hi]) contains it
    while lo < hi:
        mid = (lo + hi) // 2
        if HELP_TRIGGER in decode(ids[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi


class DagrpoBatchReward:
    def __init__(self, tokenizer, settings: dict, cloud=None):
        """`settings`: the `dagrpo` section of the verl config (integrations/verl/config.py)."""
        self.tokenizer = tokenizer
        self.loop = DualRewardLoop(load(settings), cloud)
        self._examples: dict[tuple[str, str], object] = {}

    def _example(self, info: dict):
        key = (info["example_id"], info["task"])
        if key not in self._examples:
            self._examples[key] = get_task_example(*key)
        return self._examples[key]

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _texts(self, responses, valid) -> tuple[list[str], list[int]]:
        """Each row's text up to its trigger, and its kept length (tokens)."""
        texts, ends = [], []
        for i, n in enumerate(valid.tolist()):
            ids = responses[i, :int(n)].tolist()
            cut = trigger_cut(ids, self._decode)
            ends.append(int(n) if cut is None else cut)
            texts.append(self._decode(ids[:ends[-1]]))
        return texts, ends

    def __call__(self, output, prompts) -> None:
        """Writes `rm_scores` and the reward extra info into `output`, cuts its `response_mask`."""
        import torch

        if len(output) != len(prompts):
            raise ValueError(f"rollout output has {len(output)} rows for {len(prompts)} prompt rows")
        responses = output.batch["responses"]  # (N, T_resp)
        valid = output.batch["attention_mask"][:, -responses.shape[1]:].sum(-1)  # (N,)
        texts, ends = self._texts(responses, valid)
        examples = [self._example(info) for info in prompts.non_tensor_batch["extra_info"]]
        uids = list(prompts.non_tensor_batch["uid"])
        if prompts.meta_info.get("validate", False):
            scores = self.loop.validate(examples, texts, uids)
            values = scores.rewards
            extra = {"dagrpo_cost": scores.costs.tolist(), "dagrpo_help_request": [s.help_request for s in scores.scored]}
        else:
            step = prompts.meta_info.get("global_steps")
            if step != self.loop.step + 1:
                raise ValueError(f"verl runs step {step}, the lambda state is at step {self.loop.step}: "
                                 "was the run resumed without dagrpo.checkpoint_dir?")
            result = self.loop.train_step(examples, texts, uids)
            values, extra = result.shaped, result.extra_info()
            for i, end in enumerate(ends):  # the tokens after a trigger carry no gradient
                output.batch["response_mask"][i, end:] = 0
        reward = torch.zeros(responses.shape, dtype=torch.float32)
        for i, end in enumerate(ends):
            reward[i, max(end, 1) - 1] = float(values[i])
        output.batch["rm_scores"] = reward
        for k, v in extra.items():
            output.non_tensor_batch[k] = np.array(v)
        output.meta_info["reward_extra_keys"] = list(extra)
