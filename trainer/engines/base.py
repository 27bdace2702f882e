"""What every rollout engine returns, and the one rule that cuts a generated response.

The interface is one method, so a llama.cpp engine can replace the transformers one; old-policy
log-probs are always recomputed in torch by the trainer (DESIGN §6), engines return only tokens.

A response ends at EOS, at the help trigger, or at `max_new_tokens`. Tokens after the trigger
are discarded (protocol: the cloud completion takes their place), so `token_ids` ends with the
token that completes the trigger text; that token may carry a few characters past the trigger,
which `split_at_trigger` drops from the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from collab.protocol import HELP_TRIGGER

Stop = Literal["eos", "trigger", "length"]


@dataclass(frozen=True)
class Rollout:
    token_ids: list[int]  # the local response's trained tokens (incl. EOS / trigger tokens)
    text: str  # decoded token_ids, special tokens removed
    stop: Stop


class RolloutEngine(Protocol):
    def generate(
        self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        """`n` responses for each prompt (temperature 0: greedy), as [prompt][sample]."""
        ...


def truncate_response(ids: list[int], tokenizer, eos_ids: set[int]) -> Rollout:
    """Cut generated ids at the first EOS (kept) or at the token completing the trigger (kept)."""
    stop: Stop = "length"
    for k, tok in enumerate(ids):
        if tok in eos_ids:
            ids, stop = ids[: k + 1], "eos"
            break
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if HELP_TRIGGER in text:
        lo, hi = 1, len(ids)  # smallest prefix whose text contains the trigger (monotone in k)
        while lo < hi:
            mid = (lo + hi) // 2
            if HELP_TRIGGER in tokenizer.decode(ids[:mid], skip_special_tokens=True):
                hi = mid
            else:
                lo = mid + 1
        ids, stop = ids[:lo], "trigger"
        text = tokenizer.decode(ids, skip_special_tokens=True)
    return Rollout(token_ids=list(ids), text=text, stop=stop)
