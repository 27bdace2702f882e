"""`DagrpoRewardManager`: DA-GRPO's batch reward manager for verl (docs/verl.md).

verl loads it with `reward_manager.source=importlib`, `reward_manager.name=DagrpoRewardManager`,
`reward_manager.module.path=pkg://integrations.verl.reward_manager`, and passes
`reward_model.reward_kwargs` (integrations/verl/config.py) to the constructor. verl calls it
on every training batch (after rollout, before old log-probs) and on validation batches
(`meta_info["validate"]`). What it does to the batch:

- rows: response text = the valid response tokens decoded; the Example from the row's
  `extra_info` (`example_id`, `task`; integrations/verl/data.py writes them); the group = `uid`.
- trained tokens: a response that asked for help keeps its tokens up to and including the trigger;
  the tokens vLLM generated after it are cut from `response_mask` (trainer/train.py departure 3).
  The cloud completion is never in the batch: it carries no gradient.
- reward: r - lambda * c on the last trained token (`reward_tensor[i, L-1]`); verl's GRPO sums it
  over tokens, so the sum is the sequence reward.

Imports torch only in its methods, verl not at all (duck-typed to AbstractRewardManager).
"""

from __future__ import annotations

from collections.abc import Callable

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


class DagrpoRewardManager:
    def __init__(self, tokenizer, num_examine: int = 0, compute_score=None, reward_fn_key: str = "data_source",
                 **reward_kwargs):
        # compute_score (verl's default or a custom_reward_function) is unused: collab scores (eq. 13/14)
        self.tokenizer = tokenizer
        self.loop = DualRewardLoop(load(reward_kwargs))
        self._examples: dict[tuple[str, str], object] = {}

    def _example(self, info: dict):
        key = (info["example_id"], info["task"])
        if key not in self._examples:
            self._examples[key] = get_task_example(*key)
        return self._examples[key]

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def __call__(self, data, return_dict: bool = False):
        import torch

        responses = data.batch["responses"]  # (N, T_resp)
        mask = data.batch["response_mask"] if "response_mask" in data.batch.keys() else \
            data.batch["attention_mask"][:, -responses.shape[1]:]
        lengths = mask.sum(-1).tolist()
        texts, ends = [], []
        for i, n in enumerate(lengths):
            ids = responses[i, :int(n)].tolist()
            cut = trigger_cut(ids, self._decode)
            ends.append(int(n) if cut is None else cut)
            texts.append(self._decode(ids if cut is None else ids[:cut]))
        examples = [self._example(info) for info in data.non_tensor_batch["extra_info"]]
        uids = list(data.non_tensor_batch["uid"])
        if data.meta_info.get("validate", False):
            scores = self.loop.validate(examples, texts, uids)
            values, extra = scores.rewards, {"dagrpo_cost": scores.costs.tolist()}
        else:
            result = self.loop.train_step(examples, texts, uids)
            values, extra = result.shaped, result.extra_info()
            if "response_mask" in data.batch.keys():  # the tokens after a trigger carry no gradient
                for i, end in enumerate(ends):
                    data.batch["response_mask"][i, end:] = 0
        reward = torch.zeros_like(responses, dtype=torch.float32)
        for i, end in enumerate(ends):
            reward[i, max(end, 1) - 1] = float(values[i])
        return {"reward_tensor": reward, "reward_extra_info": extra} if return_dict else reward

