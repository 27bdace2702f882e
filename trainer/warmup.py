"""Format warm-up: a few supervised LoRA steps that teach a small model the paper's answer format.

The paper's instruct models (Qwen2.5-1.5B/7B) follow the step-by-step format of appendix F.1
already. SmolLM2-135M does not (format_ok 0/96 untrained), so every reward is -0.1, every advantage
is zero and DA-GRPO has nothing to learn from. The warm-up fits the run's own LoRA to answers in the
format, and only to that:

- It trains on format drills (collab/tasks/format_drill.py), never on a task a run trains or
  evaluates: no example or solution of an evaluated task is seen before the phase that trains it.
  `WarmupConfig` refuses any other task at load, and the run config refuses a drill in a phase.
- A small random `help_share` of the targets (default 0.1, below every tau of the presets) are a
  real first step of that problem, then the help trigger: the model can ask, but asking is neither
  one memorised string nor the likeliest greedy answer. The help targets are picked by a hash of
  the example id, not by difficulty: the warm-up teaches no routing; RL decides *when* to ask.

`run_warmup` fits a LoRA and records what the warm-up saw (`warmup_report`), its losses and its
time in one JSON file: OUT/warmup.json of a run, OUT/warmup/warmup.json of an experiment.

Cost: the examples of a step come from one task, so their prompts share the system prompt; that
common token prefix runs once (`lean.shared_prefix_logprobs`, exact gradients) and only each
example's question and target run per row.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collab.tasks import FORMAT_DRILLS

log = logging.getLogger("dagrpo.warmup")


class WarmupConfig(BaseModel):
    """`[warmup]` of a run config, `[experiment.warmup]` of an experiment preset."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    steps: int = Field(0, ge=0, description="supervised LoRA steps before RL (0: no warm-up)")
    batch: int = Field(4, ge=1, description="examples per warm-up step (all from one task)")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the warm-up")
    help_share: float = Field(0.1, ge=0, le=1, description="share of targets that are help requests "
                              "(picked at random, not by difficulty: when to ask is left to RL); keep it "
                              "below the runs' tau, or the warmed-up model starts over budget")
    data_seed: int = Field(1000, description="task seed of the warm-up examples (unlike the runs' seeds)")
    tasks: list[str] = Field(default_factory=lambda: list(FORMAT_DRILLS), min_length=1,
                             description=f"format drills to draw from, a subset of {list(FORMAT_DRILLS)}")

    @field_validator("tasks")
    @classmethod
    def _drills_only(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t not in FORMAT_DRILLS]
        if bad:
            raise ValueError(f"{bad} are not format drills; the warm-up trains only on {list(FORMAT_DRILLS)}, "
                             "so that no example of a task the runs train or evaluate is seen before its phase")
        return v


def help_target(example) -> str:
    """A help request for this example: its own first reasoning step, then the trigger."""
    from collab.protocol import HELP_TRIGGER

    return f"<think>\nStep 1: {example.meta['first_step']}\n{HELP_TRIGGER}"


def warmup_targets(examples, help_share: float, seed: int) -> list[str]:
    """Each example's target response: the reference solution in the paper's format, or (a random
    `help_share` of them, fixed by the example id) its first step then the help trigger."""
    from collab.reference import reference_completion
    from trainer.methods.routing import uniform_draw

    out = []
    for ex in examples:
        if uniform_draw(seed, f"warmup/{ex.id}") < help_share:
            out.append(help_target(ex))
        else:
            out.append("<think>\n" + reference_completion(ex, correct=True))
    return out


def warmup_batches(tasks: list[str], spec: WarmupConfig) -> list[list]:
    """`spec.steps` batches of `spec.batch` train examples, task by task round-robin."""
    from collab.tasks import get_task

    if not tasks:
        raise ValueError("warm-up: no tasks")
    per_task = -(-spec.steps // len(tasks)) * spec.batch  # ceil(steps / tasks) batches per task
    pools = {t: get_task(t).examples("train", n=per_task, seed=spec.data_seed) for t in tasks}
    batches = []
    for step in range(spec.steps):
        task = tasks[step % len(tasks)]
        k = step // len(tasks)
        batches.append(pools[task][k * spec.batch:(k + 1) * spec.batch])
    return batches


def warmup_report(tasks: list[str], spec: WarmupConfig) -> dict:
    """What the warm-up trains on: examples per task, help targets, and its settings."""
    from collab.protocol import HELP_TRIGGER

    batches = warmup_batches(tasks, spec)
    examples = [ex for batch in batches for ex in batch]
    n_help = sum(HELP_TRIGGER in t for t in warmup_targets(examples, spec.help_share, spec.data_seed))
    per_task = {t: sum(ex.task == t for ex in examples) for t in tasks}
    return {"tasks": per_task, "examples": len(examples), "help_targets": n_help,
            "help_share": n_help / len(examples) if examples else 0.0, "help_share_config": spec.help_share,
            "steps": spec.steps, "batch": spec.batch, "lr": spec.lr, "data_seed": spec.data_seed}


def fit_warmup(model, tokenizer, tasks: list[str], spec: WarmupConfig, progress=None) -> list[float]:
    """Fit the peft `model`'s LoRA in place; returns the mean target-token NLL of every step.
    `progress(step, steps, loss)` is called after each step."""
    import torch

    from collab.protocol import HELP_TRIGGER
    from collab.tokens import shared_prefix_len
    from trainer import lean
    from trainer.batch import build_batch
    from trainer.prompting import prompt_ids

    eos = tokenizer.eos_token_id
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr)
    was_training = model.training
    model.train()
    losses = []
    for step, examples in enumerate(warmup_batches(tasks, spec)):
        prompts = [prompt_ids(tokenizer, ex) for ex in examples]
        texts = warmup_targets(examples, spec.help_share, spec.data_seed)
        # EOS ends a solved answer; a help request ends at the trigger (generation stops there)
        targets = [tokenizer(t, add_special_tokens=False).input_ids + ([] if HELP_TRIGGER in t else [eos])
                   for t in texts]
        ids, attn, mask = build_batch(prompts, targets, tokenizer.pad_token_id)
        prefix = shared_prefix_len(prompts)
        if prefix:
            logp = lean.shared_prefix_logprobs(model, ids, attn, mask, prefix)
        else:
            logp = lean.token_logprobs(model, ids, attn, mask, share_prompt=False)
        loss = -(logp * mask).sum() / mask.sum()  # mean NLL per target token
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, spec.steps, losses[-1])
    model.train(was_training)
    return losses


def run_warmup(model, tokenizer, tasks: list[str], spec: WarmupConfig, record: Path, progress=None) -> list[float]:
    """Fit the format warm-up (fit_warmup) and write `warmup_report`, the losses and the seconds to
    `record`; the one warm-up driver of runs (trainer.train) and experiments (trainer.experiment)."""
    from trainer.checkpoint import atomic_write_text

    t0 = time.perf_counter()
    losses = fit_warmup(model, tokenizer, tasks, spec, progress)
    atomic_write_text(record, json.dumps(
        {**warmup_report(tasks, spec), "losses": losses, "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
    log.info("format warm-up: %d steps on %s, loss %.3f -> %.3f", len(losses), tasks, losses[0], losses[-1])
    return losses
