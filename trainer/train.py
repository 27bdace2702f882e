"""The DA-GRPO driver: continual phases of Algorithm 1, with evaluation, checkpoints and resume.

Per step (paper Algorithm 1, lines 7-27):
  rollout   B prompts of the step's task, G sampled local responses each (stop at EOS / trigger)
  cloud     one query per prompt whose group asked for help; shared by its help-seeking responses
  score     r (eq. 13) and c (eq. 14) of each composed response (collab.scoring.score)
  advantage A = (r - mean_g r) - lambda * (c - mean_g c)          (eq. 7, `method.advantages`)
  loss      -(G/(G-1)) * mean_prompts sum_i A_i * sum_{local tokens} log pi   (eq. 8, loss.py)
  step      AdamW on the LoRA parameters (grad-norm clip)
  dual      lambda <- max(0, lambda + eta_lambda * (J_c_hat - tau))  (eq. 3; ctx.dual), J_c_hat = mean cost of
            the batch, as the cloud's telemetry reports it (report_ratio) or else the device's count
  log       metrics.jsonl, progress bar; evaluation every `eval_every` steps and at phase ends
One step is trainer/step.py (`train_step`); a run's setup, resume and checkpoint trainer/context.py.

Departures from the paper, and choices it leaves open:
 1. LoRA (rank/alpha/targets in config) instead of full fine-tuning, so the lr is larger
    (default 1e-4; paper 2e-6 full-model); SmolLM2-135M instead of Qwen2.5-1.5B by default.
 2. Each step draws its batch from ONE task of the phase, round-robin over the phase's tasks (the
    paper mixes a group's datasets); this keeps per-task telemetry (report_usage(task)) exact.
    There is a single lambda for the run, as in Algorithm 1.
 3. Trained tokens = the local response up to and including the trigger (asking is an action) or
    EOS; tokens generated after the trigger are discarded; the cloud completion is never in the
    policy input. Log-probs are summed, not length-normalised.
 4. Batch reduction: mean over prompts of the per-prompt estimator of eq. 8 (loss.py).
 5. Options beyond the paper, all off by default: std scaling after combining (group/batch),
    several PPO-clipped passes per batch, KL to the reference policy (the LoRA
    RL started from: trainer.models.reference_policy).
 6. tau: without a gateway it comes from the config per phase (or a schedule within a phase, paper
    D.3). With `cloud.backend = "gateway"` the gateway owns it (DESIGN.md 7): each step's tau is
    the one the gateway budgeted the step's responses at (`report_tau`; schedules set with
    `dagrpo gateway set-tau --schedule` included), a config tau that disagrees at a phase's start
    is refused, and `tau_source` in metrics.jsonl says which. The gateway's measured help ratio of
    the step (from the Assist traffic it served) drives lambda; the device's own count is logged
    beside it (`collab_ratio_device`), a disagreement as `usage_mismatch` and a loud warning.
    Every gateway call has a key fixed by (run id, step): a step run again after a crash and
    `--resume` is counted once.
 7. Steps whose advantages are all zero (and kl_beta = 0) skip the forward/backward: the gradient
    is exactly zero; the optimizer still steps (AdamW momentum), as it would with a computed zero,
    unless `train.skip_zero_steps` (then no optimizer step at all).
 8. Speed options (docs/speed.md): `train.engine = "llamacpp"` samples from the quantized GGUF with
    the exported LoRA (the deployed policy; ~5e-3 nats/token from the torch policy, logged as
    `sampler_kl`; PPO passes then weight tokens by truncated IS); log-probs always come from torch.
    `train.lean_pass` (default) computes the same log-probs with logits only at completion tokens
    and each group's prompt run once (trainer/lean.py, tested equal to the plain pass).
 9. Optional format warm-up before step 1 (`[warmup]`, off by default; on in the demo): supervised
    LoRA steps on format drills (never a task of the phases) in the paper's format, a small random
    share of them help requests (trainer/warmup.py). The paper's instruct models write the format
    already; SmolLM2-135M does not, and then every advantage is zero. `model.init_adapter` starts
    from a saved LoRA instead.
10. Budget-tracking options, all off by default (`train.method = "da_grpo"` is the paper;
    `"da_grpo_tracked"` turns on config.TRACKED, each still overridable; docs/simulator.md
    studies each on the simulated game): `train.cost_baseline` group | tau | running
    (trainer/advantages.py; an all-ask group over budget is then pushed away from asking);
    `train.lambda_controller` ascent | pid (trainer/dual.py: PID Lagrangian, Stooke et al. 2020,
    K_i = eta_lambda, gains pid_kp/pid_kd, cap lambda_max, warm start lambda_init);
    `train.skip_zero_steps` (item 7). The controller's and the running baseline's state are in
    state.json ("dual", "method"), so resume continues them exactly. A KL to the start policy is
    `train.kl_beta` (item 5); more responses per step are `train.G` and `train.batch_prompts`.
10b. `train.rollout_knob` (`train.method = "da_grpo_knob"`: the paper's advantages and lambda plus
    this): rollouts and evaluations sample with the help knob, a help bias per task. Rollouts:
    `train.knob_mode` "step" (da_grpo_knob) solves it on each step's own paths decoded with every
    ask refused, then draws the asks at it, so the step's expected ratio is tau; "anchor"
    calibrates it at each phase start and after each step from the last step's ask scores plus an
    integral of the measured error. Evaluations: the bias calibrated at the phase end on val
    queries (trainer/knob_loop.py; docs/trainer.md says why and what it costs).
11. Evaluations add a sampled help rate to the paper's greedy one: `train.eval_samples` responses
    per held-out query at the training temperature, with a 95% Wilson interval (trainer/evaluate.py).
12. Which of these the shipped settings use, and why:
    - `dagrpo demo` (trainer/demo.toml): `da_grpo_knob` (item 10b): the paper's advantages and
      projected ascent (group cost baseline, no skip, no KL; eta_lambda 0.2, lambda_init 0.5) with
      the help knob in the loop (knob_mode "step") and the trigger's tokens unweighted, because from the drill warm-up
      SmolLM2 asks on ~0% of real queries (help_share 0.1) and the paper's `da_grpo` then never
      samples a help request in 8 steps (training ratio 0.000 vs tau 0.3, 2026-12-02); the
      knob holds the sampled ratio near tau from the first step. `--set train.method=da_grpo` is
      the paper's setting. The drill warm-up (item 9) because SmolLM2 cannot write the format; the
      llamacpp engine (item 8) for speed and because the knob samples there; eval_samples 4
      (item 11) because 6 greedy queries per task cannot tell a help rate of 0.1 from 0.3.
    - micro_table1 / smollm2_table1: `da_grpo` as the paper has it beside `da_grpo_tracked`
      (micro_table1; tau baseline + PID + skip, item 10) because at 8 responses per step the
      simulator shows the paper's ascent oscillating (docs/simulator.md) and the table must show
      both; lambda_init 1.0 because a phase has 3-8 steps; the knob rows (trainer/experiment/knob.py)
      because greedy help rates of a small model say little about what a calibrated device does.
    - micro_lambda_init / micro_tau_schedules / micro_tau_sweep: `da_grpo` and `da_grpo_tracked`
      side by side, each from the same warm-up: they are the tracking figures, so the paper's
      controller and ours must be compared in one run.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

from trainer import checkpoint as ckpt
from trainer import knob_loop
from trainer.config import RunConfig, load_config
from trainer.context import Context, check_gateway_tau, save, setup, train_pools
from trainer.evaluate import evaluate, sampled_help, test_sets
from trainer.step import train_step


def run_eval(ctx: Context, tag: str, upto_phase: int) -> None:
    if tag in ctx.evals_done:
        return
    tc = ctx.cfg.train
    tests = test_sets(ctx.cfg, ctx.cfg.eval_task_names(upto_phase))
    max_new = tc.eval_max_new_tokens or tc.max_new_tokens
    bias = dict(ctx.help_bias) if tc.rollout_knob else None  # the deployed policy: LoRA + each task's bias
    res = evaluate(
        ctx.engine, ctx.prompt_ids, ctx.messages, ctx.cloud, tests,
        max_new_tokens=max_new, math_grader=tc.math_grader, tag=tag, help_bias=bias,
    )
    sampled = {}
    if tc.eval_samples:
        with torch.random.fork_rng():  # its own seed per evaluation: sampling here leaves training's RNG alone
            torch.manual_seed(tc.seed * 1_000_003 + zlib.crc32(tag.encode()))
            sampled = sampled_help(ctx.engine, ctx.prompt_ids, tests, k=tc.eval_samples, max_new_tokens=max_new,
                                   temperature=tc.temperature, math_grader=tc.math_grader, help_bias=bias)
    for task, r in res.items():
        extra = sampled[task].as_dict() if task in sampled else {}
        knob = {"help_bias": bias.get(task)} if bias is not None else {}
        ckpt.append_jsonl(ctx.out / "evals.jsonl",
                          {"tag": tag, "step": ctx.step, "phase": upto_phase, **r.as_dict(), **extra, **knob})
    ctx.evals_done.append(tag)


def train(cfg: RunConfig | None, out: str | Path, *, resume: bool = False, max_steps: int | None = None,
          progress: bool = True, engine_factory=None) -> Context:
    """Run (or resume) the continual protocol; stop early after `max_steps` global steps."""
    out = Path(out)
    if resume:
        cfg = load_config(out / "config.toml")
    ctx = setup(cfg, out, resume=resume, engine_factory=engine_factory, progress=progress)
    pools = train_pools(ctx)
    total = sum(p.steps for p in cfg.phases)
    bar = _progress(total, ctx.step, progress)
    if cfg.train.eval_at_start:
        run_eval(ctx, "start", 0)
    try:
        while ctx.phase < len(cfg.phases):
            phase = cfg.phases[ctx.phase]
            names = phase.task_names()
            if ctx.phase_step == 0 and cfg.train.rollout_knob and cfg.train.knob_mode == "anchor":
                # each task's help bias to its tau (trainer/knob_loop.py; mode "step" solves it per step)
                knob_loop.calibrate_phase(ctx, {t: (ctx.cloud.budget(t).tau if ctx.tau_source == "gateway"
                                                    else phase.tau_at(0)) for t in names})
            while ctx.phase_step < phase.steps:
                if max_steps is not None and ctx.step >= max_steps:
                    save(ctx)
                    return ctx
                task = names[ctx.phase_step % len(names)]
                # The gateway's tau now (the dual update then uses the one it budgeted the step at).
                tau = ctx.cloud.budget(task).tau if ctx.tau_source == "gateway" else phase.tau_at(ctx.phase_step)
                record = train_step(ctx, pools[task], task, tau)
                ctx.step += 1
                ctx.phase_step += 1
                ckpt.append_jsonl(out / "metrics.jsonl", record)
                if cfg.train.eval_every and ctx.step % cfg.train.eval_every == 0:
                    run_eval(ctx, f"step{ctx.step}", ctx.phase)
                if ctx.step % cfg.train.save_every == 0 or ctx.phase_step == phase.steps:
                    save(ctx)
                bar.update(1)
                bar.set_postfix_str(
                    f"{task} lam={ctx.lam:.3f} ratio={record['collab_ratio']:.2f}/tau={record['tau']:.2f} "
                    f"R={record['reward_mean']:+.2f}"
                )
            knob_loop.recalibrate_at_phase_end(ctx)  # train.rollout_knob: each task's bias, for the adapter now
            run_eval(ctx, f"phase{ctx.phase}_end", ctx.phase)
            ctx.phase += 1
            ctx.phase_step = 0
            save(ctx)
            if ctx.tau_source == "gateway":  # the next phase's tau, checked against the config
                check_gateway_tau(cfg, ctx.cloud, ctx.phase, 0)
    finally:
        bar.close()
    return ctx


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, disable=not enabled, desc="DA-GRPO", unit="step", dynamic_ncols=True)
