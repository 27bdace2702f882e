"""Sampler/policy mismatch of an engine that does not sample from the torch policy itself.

The llama.cpp engine samples from the quantized model q (plus the exported LoRA); the trainer's
log-probs come from the float32 torch policy pi. Per local token, with log q from the sampler and
log pi from the trainer's forward (same (N, T-1) layout as `build_batch`'s loss mask):

  mean_kl      mean over local tokens of the k3 estimate of KL(q || pi):
               rho - 1 - log rho, rho = pi/q (unbiased for samples from q, never negative)
  truncated_is min(pi_old / q, cap) per token (truncated importance sampling): weights the PPO
               surrogate so its expectation is taken under pi_old, not under the sampler
"""

from __future__ import annotations

import torch


def sampler_logp(rollouts, mask: torch.Tensor) -> torch.Tensor | None:
    """(N, T-1) sampler log-probs placed on the mask, rows prompt-major; None if the engine gives none."""
    flat = [r for group in rollouts for r in group]
    if not all(getattr(r, "logprobs", None) for r in flat):
        return None
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    for n, r in enumerate(flat):
        cols = mask[n].nonzero().squeeze(-1)  # (len(token_ids),) target positions of the completion
        out[n, cols] = torch.tensor(r.logprobs, dtype=torch.float32, device=mask.device)
    return out


def mean_kl(q_logp: torch.Tensor, pi_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """k3 estimate of KL(q || pi) per local token (nats). All (N, T-1); tokens sampled from q."""
    log_rho = (pi_logp.detach() - q_logp)[mask]
    if log_rho.numel() == 0:
        return 0.0
    return float((torch.exp(log_rho) - 1 - log_rho).mean())


def truncated_is(old_logp: torch.Tensor, q_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """min(pi_old / q, cap), (N, T-1), no gradient."""
    return torch.clamp(torch.exp(old_logp.detach() - q_logp), max=cap)
