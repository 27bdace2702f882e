"""The experiment's format warm-up: fitted once into OUT/warmup/adapter, every run's starting LoRA."""

from __future__ import annotations

from pathlib import Path

from trainer.experiment.preset import Preset, run_config


def build_warmup(preset: Preset, out: Path, echo=print) -> Path:
    """Fit the format warm-up (trainer.warmup.run_warmup, recorded in OUT/warmup/warmup.json) once per
    experiment directory and save its LoRA adapter, the starting point of every run (resumable: an
    existing OUT/warmup/adapter is reused)."""
    from trainer.models import load_policy, save_trained_adapter
    from trainer.warmup import run_warmup

    spec = preset.experiment.warmup
    target = out / "warmup" / "adapter"
    if (target / "adapter_config.json").is_file():
        return target
    cfg = run_config(preset, preset.scenarios[0], "da_grpo", spec.data_seed)
    tasks = list(spec.tasks)  # format drills only (WarmupConfig), never a task of the runs
    model, tok = load_policy(cfg.model, seed=spec.data_seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    run_warmup(model, tok, tasks, spec, out / "warmup" / "warmup.json",
               lambda i, n, loss: echo(f"warm-up step {i}/{n}: loss {loss:.3f}"))
    tmp = target.with_name("adapter.tmp")
    save_trained_adapter(model, tmp)
    tmp.rename(target)
    return target
