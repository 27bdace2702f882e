"""The reward manager's state on disk: one JSON line per finished training step.

verl checkpoints the policy and its dataloader, not our lambda. Each training step appends
{"step", "run_id", "dual"} (the controller's `to_dict`, trainer/dual.py) to STATE_DIR/dual.jsonl;
a resumed verl run starts again after its latest checkpoint, so the manager restores the record of
that step (later records belong to steps verl will run again) and keeps the run id, so the
replayed steps' gateway keys are the crashed run's and are counted once.
"""

from __future__ import annotations

import json
from pathlib import Path

STATE_FILE = "dual.jsonl"
VERL_LATEST = "latest_checkpointed_iteration.txt"  # written by verl's RayPPOTrainer._save_checkpoint


def read_records(state_dir: Path) -> list[dict]:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_record(state_dir: Path, record: dict) -> None:
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(state_dir) / STATE_FILE, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()


def record_at(records: list[dict], step: int) -> dict:
    """The record written after `step` (the last one, if a step was written twice)."""
    found = [r for r in records if r["step"] == step]
    if not found:
        raise ValueError(f"no lambda state for step {step} (have steps "
                         f"{sorted({r['step'] for r in records})}): was state_dir moved?")
    return found[-1]


def resumed_step(checkpoint_dir: str) -> int:
    """verl's latest checkpointed global step, or 0 when there is none (a fresh run)."""
    if not checkpoint_dir:
        return 0
    path = Path(checkpoint_dir) / VERL_LATEST
    return int(path.read_text().strip()) if path.exists() else 0
