"""The experiment's format warm-up: fitted once into OUT/warmup/adapter, every run's starting LoRA."""

from __future__ import annotations

import json
import time
from pathlib import Path

from trainer.experiment.preset import Preset, run_config


def build_warmup(preset: Preset, out: Path, echo=print) -> Path:
    """Fit the format warm-up (trainer/warmup.py) once per experiment directory and save its LoRA
    adapter, the starting point of every run (resumable: an existing OUT/warmup/adapter is reused)."""
    from trainer.checkpoint import atomic_write_text
    from trainer.models import load_policy, save_trained_adapter
    from trainer.warmup import fit_warmup

    spec = preset.experiment.warmup
    target = out / "warmup" / "adapter"
    if (target / "adapter_config.json").is_file():
        return target
    cfg = run_config(preset, preset.scenarios[0], "da_grpo", spec.data_seed)
    tasks = spec.tasks or sorted({t for sc in preset.scenarios for p in run_config(preset, sc, "da_grpo", 0).phases
                                  for t in p.task_names()})
    model, tok = load_policy(cfg.model, seed=spec.data_seed)
    t0 = time.perf_counter()
    losses = fit_warmup(model, tok, tasks, spec,
                        lambda i, n, loss: echo(f"warm-up step {i}/{n}: loss {loss:.3f}"))
    tmp = target.with_name("adapter.tmp")
    save_trained_adapter(model, tmp)
    atomic_write_text(out / "warmup" / "losses.json", json.dumps(losses))
    atomic_write_text(out / "warmup" / "info.json", json.dumps(
        {"tasks": tasks, "seconds": round(time.perf_counter() - t0, 1)}))
    tmp.rename(target)
    return target
