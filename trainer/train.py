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
11. Evaluations add a sampled help rate to the paper's greedy one: `train.eval_samples` responses
    per held-out query at the training temperature, with a 95% Wilson interval (trainer/evaluate.py).
12. Which of these the shipped settings use, and why:
    - `dagrpo demo` (trainer/demo.toml): the paper's `da_grpo` (group cost baseline, projected
      ascent, no skip, no KL) with eta_lambda 0.2 and lambda_init 0.5, so a newcomer sees the
      paper's method; the drill warm-up (item 9) because SmolLM2 cannot write the format; the
      llamacpp engine (item 8) for speed; eval_samples 4 (item 11) because 6 greedy queries per task
      cannot tell a help rate of 0.1 from 0.3.
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

import logging
import random
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from collab.cloud import CloudRefused
from collab.help import count_help
from collab.scoring import score
from collab.tasks import get_task
from collab.tasks.base import Example
from dagrpo.errors import UserError
from trainer import checkpoint as ckpt
from trainer import lean, mismatch, prompting
from trainer.batch import build_batch
from trainer.cloud import make_cloud
from trainer.config import RunConfig, load_config, to_toml
from trainer.dual import controller_from_dict, make_controller
from trainer.engines import make_engine_factory
from trainer.evaluate import evaluate, sampled_help
from trainer.loss import pg_loss, token_logprobs
from trainer.methods import make_method
from trainer.models import add_reference_adapter, load_policy, reference_policy, save_trained_adapter
from trainer.provenance import write_provenance

log = logging.getLogger("dagrpo.train")


@dataclass
class Context:
    """What one run holds: model, optimizer, clients, data, and the mutable counters."""

    cfg: RunConfig
    out: Path
    model: torch.nn.Module
    tokenizer: object
    optimizer: torch.optim.Optimizer
    engine: object
    cloud: object
    method: object
    data_rng: np.random.Generator
    lam: float
    dual: object  # the lambda controller (trainer/dual.py); ctx.lam is its current lambda
    run_id: str = ""  # random, fixed at the start, kept across resume (prefixes gateway keys)
    tau_source: str = "config"  # "gateway" with cloud.backend = "gateway": tau is the gateway's
    step: int = 0  # global steps completed
    phase: int = 0  # current phase index
    phase_step: int = 0  # steps completed in the current phase
    evals_done: list[str] = field(default_factory=list)
    _prompt_cache: dict = field(default_factory=dict)

    def messages(self, ex: Example) -> list[dict[str, str]]:
        return prompting.messages(ex)

    def prompt_ids(self, ex: Example) -> list[int]:
        if ex.id not in self._prompt_cache:
            self._prompt_cache[ex.id] = prompting.prompt_ids(self.tokenizer, ex)
        return self._prompt_cache[ex.id]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(cfg: RunConfig, out: Path, *, resume: bool, engine_factory=None, progress: bool = True) -> Context:
    out.mkdir(parents=True, exist_ok=True)
    state = ckpt.load_state(out) if resume else None
    run_id = (state or {}).get("run_id") or uuid.uuid4().hex[:12]
    if not resume and (out / "state.json").exists():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    cloud = make_cloud(cfg.cloud, cfg.train.seed, run_id)
    if cfg.cloud.backend == "gateway":
        check_gateway_tau(cfg, cloud, (state or {}).get("phase", 0), (state or {}).get("phase_step", 0))
    seed_everything(cfg.train.seed)
    adapter = out / "adapter" if state is not None else (cfg.model.init_adapter or None)
    model, tokenizer = load_policy(cfg.model, adapter=adapter, seed=cfg.train.seed)
    if state is None and cfg.warmup.steps:
        run_warmup(cfg, out, model, tokenizer, progress)
        save_trained_adapter(model, out / "reference")  # the warmed-up LoRA: pi_ref (trainer.models.REFERENCE)
        seed_everything(cfg.train.seed)  # RL starts from the same RNG state with or without a warm-up
    ref_adapter = out / "reference" if cfg.warmup.steps else cfg.model.init_adapter
    if cfg.warmup.steps and not ref_adapter.is_dir():  # a warm-up run started before pi_ref was kept
        raise UserError(f"{out} has no reference/ adapter (the warmed-up LoRA that pi_ref needs); "
                        "it was started by an older version: start it again in a new --out")
    if ref_adapter:
        add_reference_adapter(model, ref_adapter)
    model.train()
    if cfg.train.grad_checkpointing:
        lean.enable_grad_checkpointing(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    ctx = Context(
        cfg=cfg, out=out, model=model, tokenizer=tokenizer, optimizer=optimizer,
        engine=(engine_factory or make_engine_factory(cfg.model, cfg.train))(model, tokenizer),
        cloud=cloud, run_id=run_id, tau_source="gateway" if cfg.cloud.backend == "gateway" else "config",
        method=make_method(cfg.train), data_rng=np.random.default_rng(cfg.train.seed), lam=cfg.train.lambda_init,
        dual=make_controller(cfg.train),
    )
    if state is None:
        ckpt.atomic_write_text(out / "config.toml", to_toml(cfg))
        write_provenance(out)
        for name in ("metrics.jsonl", "evals.jsonl"):
            (out / name).unlink(missing_ok=True)
        if cfg.warmup.steps:
            save(ctx)  # step 0 = the warmed-up LoRA: a crash in step 1 does not cost the warm-up
        return ctx
    optimizer.load_state_dict(torch.load(out / "optimizer.pt", weights_only=True))
    ctx.lam, ctx.step, ctx.phase, ctx.phase_step = state["lambda"], state["step"], state["phase"], state["phase_step"]
    ctx.evals_done = list(state["evals_done"])
    # A state without "dual" was written before controllers existed, by the ascent step: lambda is all of it.
    ctx.dual = controller_from_dict(state.get("dual") or {"kind": "ascent", "lam": ctx.lam, "eta": cfg.train.eta_lambda})
    if "method" in state:
        ctx.method.load_state_dict(state["method"])
    ckpt.set_rng_state(state["rng"], ctx.data_rng)
    # Drop records written after the checkpoint (a crash between logging and saving).
    ckpt.rewrite_jsonl(out / "metrics.jsonl", [r for r in ckpt.read_jsonl(out / "metrics.jsonl") if r["step"] <= ctx.step])
    ckpt.rewrite_jsonl(out / "evals.jsonl", [r for r in ckpt.read_jsonl(out / "evals.jsonl") if r["tag"] in ctx.evals_done])
    return ctx


def check_gateway_tau(cfg: RunConfig, cloud, phase: int, phase_step: int) -> None:
    """The gateway owns tau (the config's is only for runs without one): a phase with a config
    schedule, or one whose config tau disagrees with the gateway's at the phase's start, is refused."""
    if phase >= len(cfg.phases):
        return
    p = cfg.phases[phase]
    if p.tau_schedule is not None:
        raise UserError(f"phase {p.name!r}: tau_schedule with cloud.backend = 'gateway': the gateway owns tau; "
                        "set the schedule there (dagrpo gateway set-tau TASK --schedule FROM:TAU,...) and "
                        "give the phase its first tau")
    if phase_step:  # a resumed phase: the gateway's tau may have moved on (a schedule)
        return
    taus = {t: cloud.budget(t).tau for t in p.task_names()}
    wrong = {t: v for t, v in taus.items() if abs(v - p.tau) > 1e-9}
    if wrong:
        raise UserError(f"phase {p.name!r}: the config says tau = {p.tau:g} but the gateway's tau is "
                        + ", ".join(f"{v:g} for task {t!r}" for t, v in wrong.items())
                        + ": with cloud.backend = 'gateway' the gateway owns tau; make the config agree "
                        "or change it on the gateway (dagrpo gateway set-tau)")


def run_warmup(cfg: RunConfig, out: Path, model, tokenizer, show: bool = True) -> None:
    """The format warm-up (trainer/warmup.py) on the run's own LoRA; losses to OUT/warmup.json."""
    import json

    from tqdm.auto import tqdm

    from trainer.warmup import fit_warmup, warmup_report

    tasks = list(cfg.warmup.tasks)
    bar = tqdm(total=cfg.warmup.steps, desc="format warm-up", unit="step", dynamic_ncols=True, disable=not show)

    def progress(step, steps, loss):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    t0 = time.perf_counter()
    try:
        losses = fit_warmup(model, tokenizer, tasks, cfg.warmup, progress)
    finally:
        bar.close()
    ckpt.atomic_write_text(out / "warmup.json", json.dumps(
        {**warmup_report(tasks, cfg.warmup), "losses": losses, "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    log.info("format warm-up: %d steps on %s, loss %.3f -> %.3f", len(losses), tasks, losses[0], losses[-1])


def save(ctx: Context) -> None:
    state = {
        "lambda": ctx.lam, "step": ctx.step, "phase": ctx.phase, "phase_step": ctx.phase_step,
        "run_id": ctx.run_id, "evals_done": ctx.evals_done, "rng": ckpt.rng_state(ctx.data_rng),
        "dual": ctx.dual.to_dict(),
    }
    if hasattr(ctx.method, "state_dict"):  # DA-GRPO's running cost baseline
        state["method"] = ctx.method.state_dict()
    ckpt.save_checkpoint(ctx.out, ctx.model, ctx.optimizer, state)


def train_pools(ctx: Context) -> dict[str, list[Example]]:
    names = {t for p in ctx.cfg.phases for t in p.task_names()}
    return {t: get_task(t).examples("train", n=ctx.cfg.train.train_pool, seed=ctx.cfg.train.seed) for t in sorted(names)}


def test_sets(ctx: Context, upto_phase: int) -> dict[str, list[Example]]:
    """Held-out test examples of every task seen up to and including `upto_phase` (train.eval_tasks)."""
    names = ctx.cfg.eval_task_names(upto_phase)
    return {t: get_task(t).examples("test", n=ctx.cfg.train.eval_n, seed=ctx.cfg.train.seed) for t in names}


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
            weight = mask[sl]  # a float weight per token is the mask times the truncated IS ratio
            if q is not None and i in old:
                weight = mask[sl] * mismatch.truncated_is(old[i], q[sl], tc.tis_cap)
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
    rollouts = ctx.engine.generate(prompts, tc.G, tc.max_new_tokens, tc.temperature)
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
    if hasattr(ctx.method, "end_step"):
        ctx.method.end_step(ratio)
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
        "t_step_s": t4 - t0, "sampler_kl": sampler_kl,
    }


def run_eval(ctx: Context, tag: str, upto_phase: int) -> None:
    if tag in ctx.evals_done:
        return
    tc = ctx.cfg.train
    tests, max_new = test_sets(ctx, upto_phase), tc.eval_max_new_tokens or tc.max_new_tokens
    res = evaluate(
        ctx.engine, ctx.prompt_ids, ctx.messages, ctx.cloud, tests,
        max_new_tokens=max_new, math_grader=tc.math_grader, tag=tag,
    )
    sampled = {}
    if tc.eval_samples:
        with torch.random.fork_rng():  # its own seed per evaluation: sampling here leaves training's RNG alone
            torch.manual_seed(tc.seed * 1_000_003 + zlib.crc32(tag.encode()))
            sampled = sampled_help(ctx.engine, ctx.prompt_ids, tests, k=tc.eval_samples, max_new_tokens=max_new,
                                   temperature=tc.temperature, math_grader=tc.math_grader)
    for task, r in res.items():
        extra = sampled[task].as_dict() if task in sampled else {}
        ckpt.append_jsonl(ctx.out / "evals.jsonl",
                          {"tag": tag, "step": ctx.step, "phase": upto_phase, **r.as_dict(), **extra})
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
