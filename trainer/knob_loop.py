"""`train.rollout_knob`: the help knob in the training loop, so the sampled help ratio is held at tau.

Beyond the paper (which has no knob). On SmolLM2 the format warm-up leaves the model asking on
~0-1% of real queries or on most of them, depending on a few help targets more or less
(docs/trainer.md); with 8 responses a step RL then never samples a help request to learn from, or
learns from nothing but help requests. The knob (collab.help_knob, issue 17's inference-time
budget) makes the device's policy "LoRA model + a help bias b per task": where the trigger may
start, the whole trigger's logit s is scored and the sequence asks with probability
sigmoid(s + b). With `rollout_knob` the trainer samples its rollouts and its evaluations from that
policy, the policy the edge agent deploys. How the rollouts' bias is set (`train.knob_mode`):

  "step" (da_grpo_knob's default)
             every step decodes its B x G paths with every ask refused, recording each candidate
             position's ask score (llama_runtime's `candidates`); b solves mean P(ask | path) = tau
             on those very paths, P(ask | path) = 1 - prod_j (1 - sigmoid(s_j + b))
             (`calibrate_bias_paths`); each path then asks at its first candidate whose draw falls
             below sigmoid(s_j + b), cut there with the trigger appended (`first_ask`;
             `LlamaCppEngine.generate_at_rate`). That is a sample of the knob at b, exactly: until it
             asks, a knob path goes on with the trigger's first token banned at each candidate, as
             the refused path did. So the policy is always the current LoRA, the step's expected
             help ratio is tau whatever one update did to the trigger's logit, and what remains of
             |ratio - tau| is the sampling of 8 responses (trainer.intervals.binomial_gap_floor).
             No phase-start calibration, no feedback; the gateway's measured ratio still drives lambda.
  "anchor"   (the first version, kept runnable) calibrate at the start of each phase, for each of
             its tasks: G sampled paths of `knob_calib_n` val queries (never test) decoded with
             every ask refused give ask scores; b = the bias with mean sigmoid(s + b) = tau
             (`calibrate_bias_sampled`). Each step: the LoRA update moves the trigger's logit
             (measured on SmolLM2: several units per update, either way; most with the trigger's
             own tokens trained), so b = anchor + offset, the anchor the same calibration of the
             last step's ask scores (each rollout's largest trigger logit met), the offset an
             integral of the measured error, offset <- offset - knob_gain * (J_c_hat - tau) /
             tau(1 - tau) (`knob_feedback`, `rollout_bias`; J_c_hat the ratio that drives lambda,
             the gateway's when there is one); a step budgeted at another tau than the bias was
             solved for (a schedule's switch, the gateway's new tau) first re-solves the anchor for
             it on the same scores (`bias_for`). Always one update behind the policy.

In both, at a phase end every task seen so far is calibrated anew (val queries, as above) on the
adapter as it is, before the evaluation (`recalibrate_at_phase_end`): the bias the device deploys
(what `dagrpo calibrate` does after an adapter update), so the held-out help rate depends on that
calibration of knob_calib_n x G paths, not on the training steps' biases.

lambda and the LoRA update are unchanged: the advantages still price a help request at lambda, so
the LoRA learns where asking pays more than it costs while b holds the ratio. The policy gradient
uses log pi_theta of the sampled tokens (trainer/step.py), not of the biased policy: at a trigger
decision the ask's gradient has the right sign but a scale (1 - sigmoid(s + b)) / (1 - sigmoid(s))
away from the biased policy's, and a position where the knob refused the trigger was sampled with
the trigger's first token banned. Each task's bias and the phases calibrated are in state.json,
the calibrations in OUT/knob_calibration.jsonl, the bias of every step in metrics.jsonl.
"""

from __future__ import annotations

import zlib

import torch

from collab.help_knob import calibrate_bias_sampled, knob_feedback, rollout_bias
from trainer import checkpoint as ckpt

CALIBRATION_FILE = "knob_calibration.jsonl"


def sample(ctx, task: str, prompts: list[list[int]], tau: float):
    """The step's rollouts and the help bias they were sampled at (None: no knob). knob_mode
    "step": the engine solves the bias on the step's own paths (`generate_at_rate`) and it becomes
    the task's bias until the next step or calibration; "anchor": `bias_for`."""
    tc = ctx.cfg.train
    if tc.rollout_knob and tc.knob_mode == "step":
        rollouts, bias = ctx.engine.generate_at_rate(prompts, tc.G, tc.max_new_tokens, tc.temperature, tau)
        ctx.help_bias[task] = bias
        return rollouts, bias
    bias = bias_for(ctx, task, tau)
    knob = {} if bias is None else {"help_bias": bias}
    return ctx.engine.generate(prompts, tc.G, tc.max_new_tokens, tc.temperature, **knob), bias


def bias_for(ctx, task: str, tau: float | None = None) -> float | None:
    """The help bias the task's rollouts use at a step budgeted at `tau` (None: no knob). When the
    bias was solved for another tau (a schedule's segment switch, a new tau from the gateway), its
    anchor is solved anew for this one on the ask scores it came from, the offset kept: else the
    first step after a switch samples at the old budget and its error kicks the integral."""
    if not ctx.cfg.train.rollout_knob:
        return None
    state = ctx.knob_state.get(task)
    if tau is not None and state is not None and state.get("scores") and state.get("tau", tau) != tau:
        state["anchor"], ctx.help_bias[task] = rollout_bias(_decode(state["scores"]), tau, state["offset"],
                                                            state["anchor"])
        state["tau"] = tau
    return ctx.help_bias.get(task)


def _encode(scores) -> list[float | str | None]:
    """-inf (no candidate position) as null, +inf (the path wrote the trigger itself) as "inf":
    state.json is strict JSON."""
    return [None if s == -float("inf") else "inf" if s == float("inf") else float(s) for s in scores]


def _decode(scores) -> list[float]:
    return [-float("inf") if s is None else float("inf") if s == "inf" else s for s in scores]


def calibrate_phase(ctx, taus: dict[str, float]) -> None:
    """Calibrate the bias of each task of the current phase to its tau (once per phase and task;
    knob_mode "anchor": "step" needs none, every step solves its own)."""
    _calibrate(ctx, taus, f"{ctx.phase}")


def recalibrate_at_phase_end(ctx) -> None:
    """At a phase end, before its evaluation: every task seen so far gets its bias calibrated anew
    to its tau on the adapter as it is now (what a device does after an adapter update: `dagrpo
    calibrate`). The tasks of earlier phases saw no feedback step of this phase; those of this
    phase were last anchored on rollouts from before the last update, which moves the trigger's
    logit by units."""
    cfg = ctx.cfg
    taus = {t: p.tau_at(p.steps - 1) for p in cfg.phases[:ctx.phase + 1] for t in p.task_names()}
    _calibrate(ctx, taus, f"{ctx.phase}/end")


def _calibrate(ctx, taus: dict[str, float], where: str) -> None:
    from collab.tasks import get_task

    tc = ctx.cfg.train
    if not tc.rollout_knob:
        return
    for task, tau in taus.items():
        key = f"{where}/{task}"
        if key in ctx.knob_calibrated:
            continue
        val = get_task(task).examples("val", n=tc.knob_calib_n, seed=tc.seed)
        with torch.random.fork_rng():  # its own seed: calibrating leaves training's RNG alone
            torch.manual_seed(tc.seed * 1_000_003 + zlib.crc32(f"knob/{key}".encode()))
            scores = ctx.engine.ask_scores([ctx.prompt_ids(ex) for ex in val], tc.G, tc.max_new_tokens,
                                           tc.temperature)
        flat = [s for group in scores for s in group]
        bias = calibrate_bias_sampled(flat, tau)
        before = ctx.help_bias.get(task)
        ctx.help_bias[task] = bias
        ctx.knob_state[task] = {"anchor": bias, "offset": 0.0, "tau": tau, "scores": _encode(flat)}
        ctx.knob_calibrated.append(key)
        ckpt.append_jsonl(ctx.out / CALIBRATION_FILE, {
            "step": ctx.step, "phase": ctx.phase, "at": "phase_end" if where.endswith("/end") else "phase_start",
            "task": task, "tau": tau, "n_queries": len(val), "k": tc.G,
            "scores_finite": sum(abs(s) < float("inf") for s in flat),
            "asks_itself": sum(s == float("inf") for s in flat), "bias_before": before, "bias": bias})


def after_step(ctx, task: str, rollouts, ratio: float, tau: float) -> float | None:
    """The task's next bias from the step's ask scores and its measured ratio (None: no knob, or
    knob_mode "step", whose next step solves its own)."""
    if not ctx.cfg.train.rollout_knob or ctx.cfg.train.knob_mode == "step" or task not in ctx.help_bias:
        return None
    state = ctx.knob_state.setdefault(task, {"anchor": ctx.help_bias[task], "offset": 0.0})
    state["offset"] = knob_feedback(state["offset"], ratio, tau, ctx.cfg.train.knob_gain)
    scores = [r.ask_score for group in rollouts for r in group]
    state["anchor"], ctx.help_bias[task] = rollout_bias(scores, tau, state["offset"], state["anchor"])
    state["tau"], state["scores"] = tau, _encode(scores)
    return ctx.help_bias[task]


def trigger_weights(mask, prompt_lens: list[int], completions: list[list[int]], triggers, weight: float):
    """The loss mask as floats with the trailing help trigger of each asking row weighted by
    `weight` (train.knob_trigger_weight). Rows align with build_batch: completion token k of row n
    is target position prompt_lens[n] - 1 + k. `triggers`: the trigger's token ids in each form
    (line start, after text); a row asks when its completion ends with one of them."""
    w = mask.to(dtype=torch.float32).clone()
    for n, (plen, comp) in enumerate(zip(prompt_lens, completions)):
        for trig in sorted(triggers, key=len, reverse=True):
            if trig and len(comp) >= len(trig) and comp[-len(trig):] == list(trig):
                end = plen - 1 + len(comp)
                w[n, end - len(trig):end] *= weight
                break
    return w
