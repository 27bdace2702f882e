"""Rollout engines: prompts (token ids) -> G sampled local responses each.

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

import torch

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


class HFEngine:
    """Batched `model.generate` over left-padded prompts; stops on EOS and on the trigger string."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {e for e in eos + [tokenizer.eos_token_id] if e is not None}

    def generate(
        self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Rollout]]:
        pad = self.tokenizer.pad_token_id
        rows = [p for p in prompts for _ in range(n)]  # (B*n) rows, prompt-major
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            attn[i, width - len(r):] = 1
        device = next(self.model.parameters()).device
        sampling = (
            dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            if temperature > 0 else dict(do_sample=False)
        )
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids.to(device), attention_mask=attn.to(device), max_new_tokens=max_new_tokens,
                stop_strings=[HELP_TRIGGER], tokenizer=self.tokenizer, pad_token_id=pad,
                eos_token_id=sorted(self.eos_ids), **sampling,
            )
        self.model.train(was_training)
        new = out[:, width:].tolist()  # (B*n, <= max_new_tokens); finished rows padded after EOS
        flat = [truncate_response(row, self.tokenizer, self.eos_ids) for row in new]
        return [flat[b * n:(b + 1) * n] for b in range(len(prompts))]
