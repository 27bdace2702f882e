"""The run step: train (or resume) one run's model with `trainer.train.train`, and read its evals.

Collaborative methods train once to the end; the edge family stops at each phase end
(`max_steps`) to be evaluated, then resumes (the trainer's exact resume).
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import RunConfig


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
