"""Collaborative training with the fixed hierarchical reward under GVPO (Zhang et al. 2025, ref. [26]).

  r_fix = hierarchical_reward(r, c, assist[kind])                         (fixed_reward.py)
  s_i   = sum over local tokens of log pi_theta(y_i|x) - log pi_ref(y_i|x)   (pi_ref: the starting policy)
  w_i   = (r_fix_i - mean_g r_fix) - beta * (s_i - mean_g s)               (gvpo_weights.py)

The trainer's loss with A = w has the gradient of GVPO's squared loss up to the constant factor
beta (derivation in gvpo_weights.py), which AdamW absorbs. s is computed here, with no gradient,
in `begin_step` (two extra lean forward passes per step: policy and reference) over the same local
tokens the loss trains on (trainer.batch.build_batch). pi_ref is the policy RL starts from (trainer.models.reference_policy: the warm-up
or init_adapter LoRA, frozen; the LoRA-disabled base for a fresh LoRA). lambda is never used.
Settings: train.method_args.beta (default 0.1) and assist_{math,code,mcq}.
"""

from __future__ import annotations

import numpy as np

from trainer.methods.args import GvpoArgs, method_args, parse_args
from trainer.methods.grpo_fixed import GrpoFixed
from trainer.methods.gvpo_weights import gvpo_weights


def sequence_logratios(model, pad_id: int, prompts, rollouts, micro_batch: int) -> np.ndarray:
    """(B, G) sum over each response's local tokens of log pi - log pi_ref, without gradient."""
    import torch

    from trainer.batch import build_batch
    from trainer.lean import token_logprobs
    from trainer.models import reference_policy

    B, G = len(rollouts), len(rollouts[0])
    rows_p = [prompts[b] for b in range(B) for _ in range(G)]
    rows_c = [r.token_ids for group in rollouts for r in group]
    ids, attn, mask = build_batch(rows_p, rows_c, pad_id)
    device = next(model.parameters()).device
    ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
    out = []
    with torch.no_grad():
        for i in range(0, len(rows_c), micro_batch):
            sl = slice(i, i + micro_batch)
            # the lean pass (trainer/lean.py): a group's prompt once, logits at completion tokens only;
            # equal to the plain pass on the mask (tests/trainer/test_lean.py), ~3x cheaper here
            logp = token_logprobs(model, ids[sl], attn[sl], mask[sl])
            with reference_policy(model):
                ref = token_logprobs(model, ids[sl], attn[sl], mask[sl])
            out.append(((logp - ref) * mask[sl]).sum(-1).double().cpu())  # (n,)
    return torch.cat(out).numpy().reshape(B, G)


class Gvpo(GrpoFixed):
    name = "gvpo"
    updates_lambda = False
    logratio: np.ndarray | None = None  # (B, G) of the current step

    def begin_step(self, ctx, *, task: str, tau: float, prompts=None, rollouts=None) -> None:
        super().begin_step(ctx, task=task, tau=tau)
        self.logratio = sequence_logratios(ctx.model, ctx.tokenizer.pad_token_id, prompts, rollouts,
                                           ctx.cfg.train.micro_batch)

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        r = self.fixed_rewards(rewards, costs)
        if self.logratio is None or self.logratio.shape != r.shape:
            raise RuntimeError("gvpo: begin_step() must compute this step's log-ratios before advantages()")
        return gvpo_weights(r, self.logratio, self.args.beta)


def make_method(cfg) -> Gvpo:
    return Gvpo(parse_args(GvpoArgs, method_args(cfg), "gvpo"))
