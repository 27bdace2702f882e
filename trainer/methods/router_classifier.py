"""The trained router baseline: a binary classifier predicting when the local model fails.

Features: the local model's last hidden state, mean-pooled over the prompt tokens (the router sees
the query, not an answer), shape (N, hidden). Labels: 1 when the local model's greedy answer on a
train-split query is wrong (help requests count as wrong: no cloud answers them), else 0.
Classifier: L2-regularised logistic regression on standardised features, fitted by full-batch
Newton steps (numpy; N is tens to hundreds). Score: P(fail | x). Threshold: calibrated on a
validation split (trainer.methods.routing.calibrate_threshold) so that the share offloaded there is
tau. Ties in the score (e.g. a classifier that saw a single class and predicts a constant) are broken
by a fixed per-query hash, so the offload rate still meets tau: such a router degenerates into a
naive one, which `fit` reports with `single_class`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.methods.routing import uniform_draw

_TIE = 1e-9  # tie-break scale: far below any real score difference of a fitted classifier


@dataclass
class LogisticRouter:
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    w: np.ndarray  # (D,)
    b: float
    single_class: bool

    def scores(self, x: np.ndarray, ids: list[str], seed: int = 0) -> np.ndarray:
        """(N, D) features -> (N,) P(fail), plus a hash tie-break below 1e-9."""
        z = ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.w + self.b
        jitter = np.array([uniform_draw(seed, i) for i in ids]) * _TIE
        return 1.0 / (1.0 + np.exp(-z)) + jitter


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 25) -> LogisticRouter:
    """Minimise mean log-loss + l2/2N * |w|^2 (bias unpenalised) by Newton's method."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # (N, D+1), last column the bias
    n, d = xs.shape
    reg = np.full(d, l2)
    reg[-1] = 0.0
    theta = np.zeros(d)
    # Newton on the (D+1)-dim problem costs O(D^3); with D ~ 600 that is ~0.1 s per step.
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xs @ theta)))
        grad = xs.T @ (p - y) / n + reg * theta / n
        hess = (xs.T * (p * (1 - p))) @ xs / n + np.diag(reg / n + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogisticRouter(mean, scale, theta[:-1], float(theta[-1]), single_class=len(set(y.tolist())) < 2)


def _prefix_chunks(prompt_ids: list[list[int]], batch: int, min_share: int = 32) -> list[list[list[int]]]:
    """Consecutive prompts in chunks of at most `batch`; a new chunk starts where a prompt shares
    fewer than `min_share` leading tokens with its chunk's first (another task's system prompt)."""
    from collab.tokens import common_prefix_len

    chunks: list[list[list[int]]] = []
    for p in prompt_ids:
        if chunks and len(chunks[-1]) < batch and common_prefix_len([chunks[-1][0], p]) >= min_share:
            chunks[-1].append(p)
        else:
            chunks.append([p])
    return chunks


def prompt_features(model, prompt_ids: list[list[int]], pad_id: int, batch: int = 16) -> np.ndarray:
    """(N, hidden) mean over each prompt's tokens of the model's last hidden state (no gradient).

    Prompts of one task share their system prompt: per batch, that common prefix runs once and
    each prompt's own tokens run on its KV cache (the prefix's hidden states are the same in every
    row, so the mean is exact); logits are kept for one position only."""
    import torch

    from collab.tokens import shared_prefix_len

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for rows in _prefix_chunks(prompt_ids, batch):
            prefix = shared_prefix_len(rows)
            rest = [r[prefix:] for r in rows]
            width = max(len(r) for r in rest)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for k, r in enumerate(rest):  # right padding: positions start right after the prefix
                ids[k, :len(r)] = torch.tensor(r)
                attn[k, :len(r)] = 1
            ids, attn = ids.to(device), attn.to(device)
            kwargs = {}
            if prefix > 0:
                pre = model(input_ids=torch.tensor([rows[0][:prefix]], device=device), use_cache=True,
                            output_hidden_states=True, logits_to_keep=1)
                pre_sum = pre.hidden_states[-1][0].sum(0)  # (hidden,)
                pre.cache.batch_repeat_interleave(len(rows))
                kwargs["cache"] = pre.cache
                attn_full = torch.cat([torch.ones(len(rows), prefix, dtype=attn.dtype, device=device), attn], 1)
            else:
                pre_sum, attn_full = 0.0, attn
            hidden = model(input_ids=ids, attention_mask=attn_full, output_hidden_states=True,
                           logits_to_keep=1, **kwargs).hidden_states[-1]  # (n, T, hidden)
            m = attn.unsqueeze(-1).to(hidden.dtype)  # (n, T, 1)
            total = (hidden * m).sum(1) + pre_sum
            out.append((total / (m.sum(1) + prefix)).float().cpu().numpy())
    return np.concatenate(out)
