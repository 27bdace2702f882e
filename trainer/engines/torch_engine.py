"""The torch rollout engine (the reference): batched `model.generate` of the policy itself."""

from __future__ import annotations

import torch

from collab.protocol import HELP_TRIGGER
from trainer.engines.base import Rollout, truncate_response


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
