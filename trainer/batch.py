"""Turn (prompt, local completion) token lists into the padded tensors the loss reads.

Each row is prompt ids + completion ids, right-padded, so positions start at 0 in every row.
`loss_mask` (N, T-1) is aligned with next-token targets ids[:, 1:] and is 1 exactly on the
completion tokens: the local response up to and including the help trigger or EOS. The cloud
completion is never part of a row (it is not the policy's output), so it cannot carry gradient.
"""

from __future__ import annotations

import torch


def build_batch(
    prompts: list[list[int]], completions: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> input_ids (N, T), attention_mask (N, T), loss_mask (N, T-1)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    rows = [p + c for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width - 1), dtype=torch.bool)
    for n, (p, c) in enumerate(zip(prompts, completions)):
        if not p:
            raise ValueError("empty prompt")
        ids[n, : len(p) + len(c)] = torch.tensor(p + c, dtype=torch.long)
        attn[n, : len(p) + len(c)] = 1
        # target position j predicts ids[j+1]: completion token k sits at len(p)+k, target len(p)+k-1
        loss_mask[n, len(p) - 1 : len(p) - 1 + len(c)] = True
    return ids, attn, loss_mask
