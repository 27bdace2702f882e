"""A run's context (model, optimizer, engine, cloud, method, lambda, counters): setup, resume, save.

A new run runs the optional format warm-up and writes its resolved config.toml and provenance.json;
a resumed one restores, from its checkpoint, the optimizer, lambda and its controller, the method's
state, the data RNG and the counters, and drops the metrics and evaluation records written after
its last checkpoint.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from collab.tasks import get_task
from collab.tasks.base import Example
from dagrpo.errors import UserError
from trainer import checkpoint as ckpt
from trainer import lean, prompting
from trainer.cloud import make_cloud
from trainer.config import RunConfig, to_toml
from trainer.dual import controller_from_dict, make_controller
from trainer.engines import make_engine_factory
from trainer.methods import make_method
from trainer.models import add_reference_adapter, load_policy, save_trained_adapter
from trainer.provenance import write_provenance


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
    help_bias: dict[str, float] = field(default_factory=dict)  # train.rollout_knob: per task (trainer/knob_loop.py)
    knob_calibrated: list[str] = field(default_factory=list)  # "<phase>/<task>" calibrated so far
    knob_state: dict[str, dict] = field(default_factory=dict)  # per task {"anchor", "offset"} of the bias
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
        warmup(cfg, out, model, tokenizer, progress)
        save_trained_adapter(model, out / "reference")  # the warmed-up LoRA: pi_ref (trainer.models.REFERENCE)
        seed_everything(cfg.train.seed)  # RL starts from the same RNG state with or without a warm-up
    ref_adapter = out / "reference" if cfg.warmup.steps else cfg.model.init_adapter
    if cfg.warmup.steps and not ref_adapter.is_dir():  # resuming a warm-up run needs its pi_ref
        raise UserError(f"{out} has no reference/ adapter (the warmed-up LoRA that pi_ref needs); "
                        "start the run again in a new --out")
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
    ctx.dual = controller_from_dict(state["dual"])
    ctx.help_bias, ctx.knob_calibrated = dict(state.get("help_bias", {})), list(state.get("knob_calibrated", []))
    ctx.knob_state = dict(state.get("knob_state", {}))
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


def warmup(cfg: RunConfig, out: Path, model, tokenizer, show: bool = True) -> None:
    """The format warm-up (trainer.warmup.run_warmup) on the run's own LoRA, recorded in OUT/warmup.json."""
    from tqdm.auto import tqdm

    from trainer.warmup import run_warmup

    bar = tqdm(total=cfg.warmup.steps, desc="format warm-up", unit="step", dynamic_ncols=True, disable=not show)

    def progress(step, steps, loss):
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        run_warmup(model, tokenizer, list(cfg.warmup.tasks), cfg.warmup, out / "warmup.json", progress)
    finally:
        bar.close()


def save(ctx: Context) -> None:
    state = {
        "lambda": ctx.lam, "step": ctx.step, "phase": ctx.phase, "phase_step": ctx.phase_step,
        "run_id": ctx.run_id, "evals_done": ctx.evals_done, "rng": ckpt.rng_state(ctx.data_rng),
        "dual": ctx.dual.to_dict(), "method": ctx.method.state_dict(),  # e.g. DA-GRPO's running cost baseline
        "help_bias": ctx.help_bias, "knob_calibrated": ctx.knob_calibrated, "knob_state": ctx.knob_state,
    }
    ckpt.save_checkpoint(ctx.out, ctx.model, ctx.optimizer, state)


def train_pools(ctx: Context) -> dict[str, list[Example]]:
    names = {t for p in ctx.cfg.phases for t in p.task_names()}
    return {t: get_task(t).examples("train", n=ctx.cfg.train.train_pool, seed=ctx.cfg.train.seed) for t in sorted(names)}
