"""The run step: train (or resume) one run's model with `trainer.train.train`, and read its evals.

Collaborative methods train once to the end; the edge family and the knob rows stop at each phase
end (`max_steps`) to be evaluated, then resume (the trainer's exact resume): `at_phase_ends`.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import RunConfig
from trainer.experiment.plan import phase_end_steps


def train_run(cfg: RunConfig, out: Path, max_steps: int | None):
    """The trainer's context after training to `max_steps` (None: the end), resuming a started run."""
    from trainer.train import train

    resume = (out / "state.json").is_file()
    return train(None if resume else cfg, out, resume=resume, max_steps=max_steps, progress=False)


def trainer_evals(out: Path) -> dict:
    """{tag: {task: metrics}} of the trainer's own phase-end evaluations (OUT/evals.jsonl)."""
    from trainer.checkpoint import read_jsonl

    by_tag: dict[str, dict] = {}
    for e in read_jsonl(out / "evals.jsonl"):
        by_tag.setdefault(e["tag"], {})[e["task"]] = {
            k: e[k] for k in ("n", "local_n", "local_accuracy", "joint_accuracy", "collab_ratio")}
    return by_tag


def at_phase_ends(cfg: RunConfig, out: Path, path: Path, key: str, evaluate) -> dict[str, dict]:
    """Train to each phase end k, append {"tag", "step", key: evaluate(ctx, k)} to `path`, resume;
    phase ends already in `path` are skipped (an interrupted run resumes there). {tag: record}."""
    from trainer.checkpoint import append_jsonl, read_jsonl

    done = {r["tag"]: r for r in read_jsonl(path)}
    for k, end in enumerate(phase_end_steps(cfg)):
        tag = f"phase{k}_end"
        if tag in done:
            continue
        ctx = train_run(cfg, out, max_steps=end)
        if ctx.step != end:
            raise RuntimeError(f"{out}: expected the model at step {end}, found step {ctx.step}")
        rec = {"tag": tag, "step": end, key: evaluate(ctx, k)}
        append_jsonl(path, rec)
        done[tag] = rec
        del ctx
    return done
