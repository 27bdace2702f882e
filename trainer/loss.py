"""The DA-GRPO policy-gradient loss (paper eq. 8, Proposition A.2), with optional PPO clip and KL.

Batch reduction (defined here once): with B prompts of G responses each,

    loss = -(G / (G-1)) * (1/B) * sum_b sum_i A_bi * sum_{t in local(b,i)} log pi(y_bit | ...)

i.e. the mean over prompts of the per-prompt unbiased estimator of eq. 8, negated for gradient
descent. Only *local* tokens are summed (the mask): the response up to and including the help
trigger, or up to and including EOS; never the prompt, padding, text generated after the trigger,
or the cloud completion. No length normalisation (DESIGN §2.5).

Options: with `old_logp` (several optimizer passes per batch) each token's term becomes the PPO
surrogate min(rho*A, clip(rho, 1-eps, 1+eps)*A), rho = exp(logp - old_logp), which equals A*logp
in gradient at rho = 1. With `ref_logp` and beta > 0, beta * (1/B) * sum of the per-token k3 KL
estimate exp(ref-logp) - (ref-logp) - 1 over local tokens is added.

What the KL term's gradient is. Its value estimates KL(pi || pi_ref) (k3, on tokens from pi), but
its gradient per token is (1 - pi_ref/pi) * grad log pi, whose expectation under pi is
sum_y (pi - pi_ref) grad log pi = -E_{pi_ref}[grad log pi] = grad KL(pi_ref || pi): descending it
pulls pi toward pi_ref in the mass-covering direction, not along grad KL(pi || pi_ref) (that would
be the k1 score form (logp - ref) * grad log pi with logp - ref detached). Both vanish at pi =
pi_ref and agree to first order near it; the logged value is KL(pi || pi_ref)'s.

Samples from another policy (the llama.cpp engine samples from the quantized q, not from pi).
With several passes the weight `mask` carries min(pi_old/q, cap) per token (engines/mismatch.py).
With one pass (the default) it is the plain mask: the estimator is then the gradient under q, not
pi, i.e. biased. Its bias is bounded by the total variation between the sequence distributions,
TV(q, pi) <= sqrt(KL(q || pi) / 2) with KL summed over a response's local tokens (Pinsker): at the
~5e-3 nats/token measured for SmolLM2 Q4_1 (DESIGN.md 6) and 64 local tokens, <= sqrt(0.16) = 0.4
times the largest per-sequence term -- a bound, not an estimate. Weighting each token by
min(pi/q, cap), as the several-pass path does, is the correction. Each step logs the measured
per-token KL(q || pi) as `sampler_kl`, so a run's bound can be read off its metrics.

Rows may be any chunk of the batch (gradient accumulation): pass the batch's `n_prompts`.
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log pi of each next token: logits (N, T, V), ids (N, T) -> (N, T-1), aligned to ids[:, 1:]."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def pg_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    adv: torch.Tensor,
    *,
    group_size: int,
    n_prompts: int,
    old_logp: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    ref_logp: torch.Tensor | None = None,
    kl_beta: float = 0.0,
) -> torch.Tensor:
    """Scalar loss for rows of the batch. logp/mask/old_logp/ref_logp: (N, T-1); adv: (N,)."""
    if group_size < 2:
        raise ValueError(f"the group estimator needs G >= 2, got {group_size}")
    mask = mask.to(logp.dtype)
    a = adv.to(logp.dtype).unsqueeze(-1)  # (N, 1)
    if old_logp is None:
        per_token = a * logp
    else:
        ratio = torch.exp(logp - old_logp)
        per_token = torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
    factor = group_size / (group_size - 1)
    loss = -factor * (per_token * mask).sum() / n_prompts
    if ref_logp is not None and kl_beta > 0:
        d = ref_logp - logp
        loss = loss + kl_beta * ((torch.exp(d) - d - 1) * mask).sum() / n_prompts
    return loss
