"""The lean policy-gradient forward: the same (N, T-1) token log-probs as the plain pass, cheaper.

The plain pass (`loss.token_logprobs(model(ids).logits, ids)`) projects every position of every
row onto the vocabulary and log-softmaxes all of it: (N, T, V) floats, most of them prompt
positions the loss never reads. This pass returns the identical tensor -- log pi(ids[:, j+1]) at
every target position j where `loss_mask` is 1, exactly 0.0 elsewhere -- with two savings:

1. Logits only at completion positions (the model's `logits_to_keep`), so the lm_head matmul and
   the log-softmax cover completion tokens only; no extra copy of a vocabulary-sized tensor is kept.
2. Shared prompt (`share_prompt=True`): rows that carry the same prompt (a GRPO group, adjacent in
   the batch) run that prompt once, with `use_cache=True`, and the G completions run on the cache
   repeated G times. The prompt's key/values stay in the autograd graph, so each completion's
   gradient flows back through the one prompt computation and the G contributions add up there --
   the same sum the plain pass computes with G copies of the prompt. The prefix is the prompt
   minus its last token; that token starts each completion row, because its output predicts the
   first completion token.

Zeros outside the mask are constants, so `pg_loss` (which multiplies by the mask) gives the same
loss and gradients; the tests check loss and LoRA gradients against the plain pass (1e-5 rel).

Gradient checkpointing (`enable_grad_checkpointing`) trades a second forward for activation
memory. transformers turns the KV cache off under checkpointing, so it combines with
`share_prompt=False` only (the config refuses the other combination).
"""

from __future__ import annotations

import torch


def prompt_lengths(attn: torch.Tensor, loss_mask: torch.Tensor) -> list[int]:
    """Per row, the prompt length: real tokens minus completion tokens. attn (N, T), mask (N, T-1)."""
    return (attn.sum(1) - loss_mask.sum(1)).tolist()


def prompt_groups(ids: torch.Tensor, plens: list[int]) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of adjacent rows with the same prompt tokens."""
    groups, start = [], 0
    for n in range(1, len(plens) + 1):
        if n == len(plens) or plens[n] != plens[start] or not torch.equal(ids[n, : plens[n]], ids[start, : plens[n]]):
            groups.append((start, n))
            start = n
    return groups


def _gather_logp(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (n, K, V), targets (n, K) -> log pi(target) (n, K), without keeping the logits alive."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _unshared(model, ids, attn, loss_mask, plens) -> torch.Tensor:
    """All rows in one forward; logits from the first completion position of any row on."""
    first = min(plens) - 1  # target position of the earliest completion token
    keep = torch.arange(first, ids.shape[1] - 1, device=ids.device)  # (K,)
    logits = model(input_ids=ids, attention_mask=attn, logits_to_keep=keep).logits  # (N, K, V)
    logp = _gather_logp(logits, ids[:, first + 1:])  # (N, K)
    out = torch.zeros(loss_mask.shape, dtype=logp.dtype, device=ids.device)
    out[:, first:] = logp
    return out * loss_mask  # zero (not garbage) where no completion token is predicted


def shared_prefix_logprobs(model, ids: torch.Tensor, attn: torch.Tensor, loss_mask: torch.Tensor,
                           prefix_len: int) -> torch.Tensor:
    """Rows whose first `prefix_len` tokens are identical (and real): that prefix runs once with
    `use_cache=True`, the rest of every row on its cache repeated n times. The cache stays in the
    autograd graph, so gradients equal the plain pass's. Returns (n, T-1) log-probs on the mask."""
    n, width = ids.shape
    if not 0 < prefix_len < width:
        raise ValueError(f"prefix_len {prefix_len} outside 1..{width - 1}")
    cache = model(input_ids=ids[:1, :prefix_len], use_cache=True, logits_to_keep=1).cache
    cache.batch_repeat_interleave(n)  # (n, heads, prefix_len, d) per layer, still in the autograd graph
    rest = ids[:, prefix_len:]  # (n, R): tokens after the prefix (+ right padding)
    # the 2-D mask spans cache + new tokens: (n, prefix_len + R), which is exactly the rows' own mask
    logits = model(input_ids=rest, attention_mask=attn, cache=cache).logits  # (n, R, V)
    # position prefix_len + k predicts ids[prefix_len + k + 1]: targets rest[:, 1:]
    logp = _gather_logp(logits[:, :-1], rest[:, 1:])  # (n, R-1)
    out = torch.zeros((n, width - 1), dtype=logp.dtype, device=ids.device)
    out[:, prefix_len:] = logp
    return out * loss_mask


def _shared_group(model, ids, attn, loss_mask, plen: int) -> torch.Tensor:
    """Rows with one prompt of `plen` tokens: prefix once, then the completions on its cache."""
    return shared_prefix_logprobs(model, ids, attn, loss_mask, plen - 1)


def token_logprobs(model, ids: torch.Tensor, attn: torch.Tensor, loss_mask: torch.Tensor, *,
                   share_prompt: bool = True) -> torch.Tensor:
    """(N, T-1) log-probs equal to the plain pass on the mask, 0 elsewhere. Rows as build_batch makes them."""
    plens = prompt_lengths(attn, loss_mask)
    if not share_prompt:
        return _unshared(model, ids, attn, loss_mask, plens)
    parts = []
    for start, end in prompt_groups(ids, plens):
        sl = slice(start, end)
        if plens[start] > 1:
            parts.append(_shared_group(model, ids[sl], attn[sl], loss_mask[sl], plens[start]))
        else:  # a one-token prompt leaves no prefix to share (a cache cannot be empty)
            parts.append(_unshared(model, ids[sl], attn[sl], loss_mask[sl], plens[sl]))
    return torch.cat(parts, dim=0)


def enable_grad_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant: LoRA-only grads work)."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
