"""One DA-GRPO step (Algorithm 1, lines 7-27), from rollout to the dual update and its metrics record.

rollout -> cloud and scores (`collect`) -> advantages -> policy update -> dual update -> record;
trainer/train.py states the algorithm and its departures.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from collab.cloud import CloudRefused
from collab.help import count_help
from collab.scoring import score
from collab.tasks.base import Example
from trainer import knob_loop, lean, mismatch
from trainer.batch import build_batch
from trainer.context import Context
from trainer.loss import pg_loss, token_logprobs
from trainer.models import reference_policy

log = logging.getLogger("dagrpo.train")


def collect(ctx: Context, examples: list[Example], rollouts, key: str) -> tuple[list, int, int]:
    """Cloud queries (one per group with a help request, collab.help) and scores: -> [prompt][response] Scored.

    A trigger after a broken format is not a help request: its reward is -alpha_f whatever the
    cloud answers, so its group asks the cloud only for its eq. 14 requests (`group_help`). Each
    Assist (`<key>/<b>`) names the step's usage report (`<key>/usage`): the gateway counts its help
    there."""
    scored, queries, refused = [], 0, 0
    for b, (ex, group) in enumerate(zip(examples, rollouts)):
        n_help = count_help((r.text for r in group), ex.kind)
        cloud_text = None
        if n_help:
            queries += 1
            try:
                cloud_text = ctx.cloud.assist(
                    ex, ctx.messages(ex), idempotency_key=f"{key}/{b}", group_help=n_help, group_size=len(group),
                    report_key=f"{key}/usage",
                ).completion
            except CloudRefused:  # enforce-mode budget spent: the help requests stay unanswered
                refused += 1
        scored.append([score(ex, r.text, cloud_text, math_grader=ctx.cfg.train.math_grader) for r in group])
    return scored, queries, refused


def policy_update(ctx: Context, prompts, rollouts, adv: np.ndarray) -> tuple[float, float, float | None]:
    """Forward/backward in micro-batches, one optimizer step per PPO epoch -> (loss, grad norm, sampler KL).

    With an engine that reports sampler log-probs (llamacpp), the KL(sampler || torch policy) per
    local token is measured on the first pass, and PPO passes weight tokens by truncated IS.
    """
    tc, G, B = ctx.cfg.train, adv.shape[1], adv.shape[0]
    rows_p = [prompts[b] for b in range(B) for _ in range(G)]
    rows_c = [r.token_ids for group in rollouts for r in group]
    ids, attn, mask = build_batch(rows_p, rows_c, ctx.tokenizer.pad_token_id)
    device = next(ctx.model.parameters()).device
    ids, attn, mask = ids.to(device), attn.to(device), mask.to(device)
    flat_adv = torch.tensor(adv.reshape(-1), dtype=torch.float32, device=device)  # (B*G,)
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    chunks = [slice(i, i + tc.micro_batch) for i in range(0, len(rows_c), tc.micro_batch)]

    def logp(sl) -> torch.Tensor:  # (n, T-1) log-probs of the rows in `sl`
        if tc.lean_pass:
            return lean.token_logprobs(ctx.model, ids[sl], attn[sl], mask[sl], share_prompt=tc.share_prompt)
        return token_logprobs(ctx.model(input_ids=ids[sl], attention_mask=attn[sl]).logits, ids[sl])

    q = mismatch.sampler_logp(rollouts, mask)  # (B*G, T-1) log q of the sampled tokens, or None
    base = mask
    if tc.rollout_knob and tc.knob_trigger_weight != 1.0:  # the trigger's tokens weighted (knob_loop)
        base = knob_loop.trigger_weights(mask, [len(p) for p in rows_p], rows_c, ctx.engine.triggers,
                                         tc.knob_trigger_weight).to(device)
    first_pass: list[torch.Tensor] = []

    skip = not np.any(adv) and tc.kl_beta == 0
    if skip and tc.skip_zero_steps:
        return 0.0, 0.0, None  # no optimizer step at all: AdamW would still move on its momentum
    old, ref = {}, {}
    with torch.no_grad():
        if tc.ppo_epochs > 1 and not skip:
            old = {i: logp(sl) for i, sl in enumerate(chunks)}
        if tc.kl_beta > 0:
            with reference_policy(ctx.model):
                ref = {i: logp(sl) for i, sl in enumerate(chunks)}
    total_loss, grad_norm = 0.0, 0.0
    for epoch in range(tc.ppo_epochs):
        ctx.optimizer.zero_grad(set_to_none=False)
        total_loss = 0.0
        for i, sl in enumerate([] if skip else chunks):
            lp = logp(sl)
            if epoch == 0:
                first_pass.append(lp.detach())
            weight = base[sl]  # a float weight per token is the mask times the truncated IS ratio
            if q is not None and i in old:
                weight = base[sl] * mismatch.truncated_is(old[i], q[sl], tc.tis_cap)
            loss = pg_loss(
                lp, weight, flat_adv[sl], group_size=G, n_prompts=B, old_logp=old.get(i),
                clip_eps=tc.clip_eps, ref_logp=ref.get(i), kl_beta=tc.kl_beta,
            )
            loss.backward()
            total_loss += loss.item()
        for p in params:  # a skipped step has an exactly-zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm))
        ctx.optimizer.step()
    kl = mismatch.mean_kl(q, torch.cat(first_pass), mask) if q is not None and first_pass else None
    return total_loss, grad_norm, kl


def train_step(ctx: Context, pool: list[Example], task: str, tau: float) -> dict:
    tc = ctx.cfg.train
    t0 = time.perf_counter()
    idx = ctx.data_rng.choice(len(pool), size=min(tc.batch_prompts, len(pool)), replace=False)
    examples = [pool[i] for i in idx]
    prompts = [ctx.prompt_ids(ex) for ex in examples]
    rollouts, bias = knob_loop.sample(ctx, task, prompts, tau)  # the help knob's bias, None without it
    t1 = time.perf_counter()
    key = f"train/{ctx.step + 1}"  # with the run id: the same for a step run again after a crash
    scored, queries, refused = collect(ctx, examples, rollouts, key=key)
    t2 = time.perf_counter()
    rewards = np.array([[s.reward for s in g] for g in scored])  # (B, G)
    costs = np.array([[s.cost for s in g] for g in scored])  # (B, G)
    ctx.method.begin_step(ctx, task=task, tau=tau, prompts=prompts, rollouts=rollouts)
    adv = ctx.method.advantages(rewards, costs, ctx.lam)  # (B, G)
    t3 = time.perf_counter()
    loss, grad_norm, sampler_kl = policy_update(ctx, prompts, rollouts, adv)
    t4 = time.perf_counter()

    flat = [s for g in scored for s in g]
    responses, help_requests = len(flat), sum(s.help_request for s in flat)
    device_ratio = help_requests / responses
    telemetry = ctx.cloud.report_usage(task, responses, help_requests, idempotency_key=f"{key}/usage")
    ratio, mismatch = device_ratio, False
    if telemetry is not None:  # the gateway's measured ratio of these responses, and their tau
        ratio, tau = telemetry.report_ratio, telemetry.report_tau
        mismatch = telemetry.report_device_ratio != ratio
        if mismatch:
            log.warning("CLOUD AND DEVICE DISAGREE on the help ratio of step %d: gateway %.4f, device %.4f "
                        "(the gateway's is used)", ctx.step + 1, ratio, device_ratio)
    lam_before = ctx.lam
    if ctx.method.updates_lambda:
        ctx.lam = ctx.dual.update(ratio, tau)
    ctx.method.end_step(ratio)
    bias_next = knob_loop.after_step(ctx, task, rollouts, ratio, tau)
    gen_tokens = sum(len(r.token_ids) for g in rollouts for r in g)
    return {
        "step": ctx.step + 1, "phase": ctx.phase, "phase_name": ctx.cfg.phases[ctx.phase].name, "task": task,
        "tau": tau, "tau_source": ctx.tau_source, "lambda": lam_before, "lambda_next": ctx.lam,
        "collab_ratio": ratio, "collab_ratio_device": device_ratio, "usage_mismatch": mismatch,
        "help_requests": help_requests, "responses": responses,
        "help_triggers": sum(s.requests_help for s in flat), "cloud_queries": queries, "cloud_refused": refused,
        "reward_mean": float(rewards.mean()), "cost_mean": float(costs.mean()),
        "accuracy": sum(s.correct for s in flat) / len(flat), "format_rate": sum(s.format_ok for s in flat) / len(flat),
        "adv_abs_mean": float(np.abs(adv).mean()), "loss": loss, "grad_norm": grad_norm,
        "response_tokens_mean": gen_tokens / len(flat), "tokens_per_s": gen_tokens / max(t1 - t0, 1e-9),
        "t_rollout_s": t1 - t0, "t_cloud_reward_s": t2 - t1, "t_advantage_s": t3 - t2, "t_update_s": t4 - t3,
        "t_step_s": t4 - t0, "sampler_kl": sampler_kl, "help_bias": bias, "help_bias_next": bias_next,
        **({} if bias_next is None else {f"help_bias_{k}": ctx.knob_state[task][k] for k in ("anchor", "offset")}
           | {"help_ask_scores": ctx.knob_state[task]["scores"]}),  # null: no candidate position met
    }
