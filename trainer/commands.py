"""What `dagrpo demo / train / eval` do once parsed: run, then summarise and plot."""

from __future__ import annotations

import json
import shutil
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dagrpo.errors import UserError
from trainer.checkpoint import atomic_write_text, read_jsonl
from trainer.config import RunConfig, load_config
from trainer.forgetting import task_forgetting

console = Console()


def demo_config(overrides: list[str] = ()) -> RunConfig:
    """The embedded demo preset (trainer/demo.toml, identical to configs/demo.toml)."""
    path = resources.files("trainer") / "demo.toml"
    return load_config(Path(str(path)), overrides)


def demo(out: str, overrides: list[str]) -> int:
    from trainer.train import train

    cfg = demo_config(overrides)
    out_dir = Path(out)
    if (out_dir / "state.json").exists():
        shutil.rmtree(out_dir)  # the demo always starts fresh
    t0 = time.perf_counter()
    train(cfg, out_dir)
    wall = time.perf_counter() - t0
    summary = summarize_run(out_dir, wall_s=wall)
    print_summary(summary)
    _plots(out_dir)
    if cfg.train.rollout_knob:  # the evaluations above already decoded with each task's calibrated bias
        console.print("help knob: training and the evaluations above used each task's help bias (trainer/knob_loop.py); "
                      f"`dagrpo calibrate --run {out_dir} --tau {cfg.phases[-1].tau_at(cfg.phases[-1].steps - 1)}` "
                      "calibrates the greedy knob for the edge agent", soft_wrap=True)
    elif cfg.train.engine == "llamacpp":
        knob_summary(out_dir, cfg)
    return 0


def knob_summary(out: Path, cfg: RunConfig, n: int = 16) -> None:
    """The help knob after training (docs/edge.md): the bias calibrated to the last phase's tau on
    `n` validation queries per task of that phase, and the held-out help rate and joint accuracy
    on `n` test queries with and without it."""
    from trainer.calibrate import calibrate_run

    phase = cfg.phases[-1]
    tau = phase.tau_at(phase.steps - 1)
    t0 = time.perf_counter()
    result = calibrate_run(out, [tau], tasks=phase.task_names(), n_val=n, n_test=n,
                           threads=cfg.train.engine_threads)
    table = Table(title=f"Help knob: bias calibrated to tau {tau:.2f} on {n} val queries, "
                        f"held-out {n} test queries (greedy, {time.perf_counter() - t0:.0f} s)")
    for col in ("task", "bias", "help rate: no knob -> knob", "joint acc %: no knob -> knob"):
        table.add_column(col)
    for task, r in result.items():
        row = r["by_tau"][0]
        table.add_row(task, f"{row['bias']:+.2f}", f"{r['test_help_rate_no_knob']:.2f} -> {row['test_help_rate']:.2f}",
                      f"{_pct(r['test_no_knob']['joint_accuracy'])} -> {_pct(row['test']['joint_accuracy'])}")
    console.print(table)


def train_command(config: str | None, overrides: list[str], out: str, *, resume: bool, max_steps: int | None,
                  progress: bool) -> int:
    from trainer.train import train

    if resume:
        if config or overrides:
            raise UserError("--resume reads the run's own config.toml; drop --config/--set")
        cfg = None
    else:
        if config is None:
            raise UserError("--config is required (e.g. configs/smoke.toml) unless --resume")
        cfg = load_config(config, overrides)
    t0 = time.perf_counter()
    ctx = train(cfg, out, resume=resume, max_steps=max_steps, progress=progress)
    summary = summarize_run(Path(out), wall_s=time.perf_counter() - t0)
    print_summary(summary)
    _plots(Path(out))
    done = ctx.phase >= len(ctx.cfg.phases)
    console.print(f"{'finished' if done else 'stopped (resumable with --resume)'} at step {ctx.step}; run in {out}")
    return 0


def _plots(out: Path) -> None:
    from trainer.plots import plot_run

    for path in plot_run(out):
        console.print(f"plot: {path}")


def summarize_run(out: Path, wall_s: float | None = None) -> dict:
    """Accuracy per phase end, forgetting of the first phase's tasks, final ratio vs tau, lambda."""
    cfg = load_config(out / "config.toml")
    metrics, evals = read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "evals.jsonl")
    by_tag: dict[str, dict[str, dict]] = {}
    for e in evals:
        by_tag.setdefault(e["tag"], {})[e["task"]] = e
    forgetting = {}
    if "phase0_end" in by_tag and f"phase{len(cfg.phases) - 1}_end" in by_tag and len(cfg.phases) > 1:
        for task in cfg.phases[0].task_names():
            forgetting[task] = {which: task_forgetting(by_tag, cfg, task, which)[2] for which in ("joint", "local")}
    phase_ratios = []
    for i, phase in enumerate(cfg.phases):
        second_half = [m for m in metrics if m["phase"] == i][phase.steps // 2:]
        if second_half:
            ratio = sum(m["collab_ratio"] for m in second_half) / len(second_half)
            phase_ratios.append({"phase": phase.name or f"phase{i}", "tau": second_half[-1]["tau"],
                                 "train_ratio_second_half": ratio})
    last_phase = metrics[-1]["phase"] if metrics else 0
    tail = [m for m in metrics if m["phase"] == last_phase and m["tau"] == (metrics[-1]["tau"] if metrics else None)]
    summary = {
        "steps": len(metrics),
        "wall_s": wall_s,
        "evals": by_tag,
        "forgetting": forgetting,
        "phase_ratios": phase_ratios,
        "task_tau": {t: p.tau_at(p.steps - 1) for p in cfg.phases for t in p.task_names()},
        "final_tau": metrics[-1]["tau"] if metrics else None,
        "final_train_ratio": sum(m["collab_ratio"] for m in tail) / len(tail) if tail else None,
        "final_lambda": metrics[-1]["lambda_next"] if metrics else cfg.train.lambda_init,
        "cloud_backend": cfg.cloud.backend,
        "math_grader": cfg.train.math_grader,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _sampled(e: dict) -> str:
    """The sampled help rate of an evaluation record with its Wilson interval ('-' without samples)."""
    if "sampled_collab_ratio" not in e:
        return "-"
    lo, hi = e["sampled_collab_ci"]
    return f"{e['sampled_collab_ratio']:.2f} [{lo:.2f}, {hi:.2f}] (n={e['sampled_n']})"


def print_summary(s: dict) -> None:
    table = Table(title="Held-out accuracy (%) at each evaluation (greedy; sampled ratio at the training temperature)")
    for col in ("eval", "task", "local-solved acc (n)", "joint acc", "collab ratio", "sampled ratio [95% CI]",
                "format ok"):
        table.add_column(col)
    for tag, tasks in s["evals"].items():
        for task, e in tasks.items():
            table.add_row(tag, task, f"{_pct(e['local_accuracy'])} ({e['local_n']}/{e['n']})",
                          _pct(e["joint_accuracy"]), f"{e['collab_ratio']:.2f}", _sampled(e), _pct(e["format_rate"]))
    console.print(table)
    for p in s.get("phase_ratios", []):
        console.print(f"training collaboration ratio, second half of {p['phase']}: "
                      f"{p['train_ratio_second_half']:.3f} vs tau {p['tau']:.2f}", soft_wrap=True)
    if s["evals"]:
        tag, tasks = list(s["evals"].items())[-1]
        for task, e in tasks.items():
            knob = "" if e.get("help_bias") is None else f" (help knob, bias {e['help_bias']:+.2f})"
            console.print(f"held-out help rate at {tag}, {task}: greedy {e['collab_ratio']:.2f}, "
                          f"sampled {_sampled(e)} vs tau {s['task_tau'][task]:.2f}{knob}", soft_wrap=True)
    for task, f in s["forgetting"].items():
        joint, local = ("-" if f[k] is None else f"{f[k]:.3f}" for k in ("joint", "local"))
        console.print(f"forgetting rate {task}: joint {joint}, local-solved {local}")
    if s["final_tau"] is not None:
        console.print(f"final training collaboration ratio {s['final_train_ratio']:.3f} vs tau {s['final_tau']:.2f}; "
                      f"lambda {s['final_lambda']:.4f}")
    wall = "" if s["wall_s"] is None else f", wall time {s['wall_s']:.0f} s"
    console.print(f"{s['steps']} steps, cloud backend '{s['cloud_backend']}', math grader '{s['math_grader']}'{wall}")


def eval_command(*, run: str | None, adapter: str | None, config: str | None, n: int | None,
                 tasks: list[str] | None, base: bool) -> int:
    from trainer.evaluate_cmd import evaluate_adapter

    if run is not None:
        run_dir = Path(run)
        if not (run_dir / "config.toml").is_file():
            raise UserError(f"{run_dir} is not a run directory (no config.toml)")
        cfg = load_config(run_dir / "config.toml")
        adapter_dir = run_dir / "adapter"
        if not base and not (adapter_dir / "adapter_config.json").is_file():
            raise UserError(f"{adapter_dir} holds no adapter yet")
    else:
        cfg = load_config(config) if config else demo_config()
        adapter_dir = Path(adapter)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise UserError(f"{adapter_dir} is not a peft adapter directory (no adapter_config.json)")
    results = evaluate_adapter(cfg, None if base else adapter_dir, n=n, tasks=tasks,
                               run_dir=Path(run) if run is not None and not base else None)
    table = Table(title=f"Evaluation of {'the base model' if base else adapter_dir} (greedy)")
    for col in ("task", "local-solved acc (n)", "joint acc", "collab ratio", "help rate", "format ok"):
        table.add_column(col)
    for r in results.values():
        table.add_row(r.task, f"{_pct(r.local_accuracy)} ({r.local_n}/{r.n})", _pct(r.joint_accuracy),
                      f"{r.collab_ratio:.2f}", f"{r.help_rate:.2f}", _pct(r.format_rate))
    console.print(table)
    if run is not None:
        atomic_write_text(Path(run) / ("eval_base.json" if base else "eval.json"),
                          json.dumps({k: v.as_dict() for k, v in results.items()}, indent=1))
    return 0
