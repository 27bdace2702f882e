"""The experiment's PNG figures: lambda and ratio vs tau (figs. 4, 10), accuracy vs tau (fig. 9).

- lambda_ratio.png: per scenario (column) and method, the seed mean of lambda (top) and of the batch
  collaboration ratio (bottom, moving average of 3) against tau;
- lambda_init.png (kind = "lambda_init"): per method, lambda and ratio of every scenario on shared axes;
- accuracy_vs_tau.png (kind = "tau_sweep"): each method's accuracy at phase end against the task's tau.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainer.experiment.aggregate import mean_std, seed_mean_curves  # noqa: E402
from trainer.experiment.plan import task_taus  # noqa: E402
from trainer.experiment.preset import Preset, report_config  # noqa: E402
from trainer.forgetting import task_forgetting  # noqa: E402
from trainer.plots import moving_average, save_figure  # noqa: E402


def write_figures(preset: Preset, res: dict, out: Path) -> list[Path]:
    """The figures of the preset's kind from the aggregated results `res`; their paths."""
    written = [_lambda_ratio(preset, res, out)]
    if preset.experiment.kind == "tau_sweep":
        written.append(_accuracy_vs_tau(preset, res, out))
    if preset.experiment.kind == "lambda_init":
        written.append(_overlay(preset, res, out))
    return written


def _lambda_ratio(preset: Preset, res: dict, out: Path) -> Path:
    spec = preset.experiment
    per_method = [m for m in spec.methods if m not in ("cloud_only", "naive_router", "router")]
    fig, axes = plt.subplots(2, len(preset.scenarios), figsize=(4.2 * len(preset.scenarios), 6),
                             squeeze=False, sharey="row")
    for j, sc in enumerate(preset.scenarios):
        top, bottom = axes[0][j], axes[1][j]
        tau_drawn = False
        for i, m in enumerate(per_method):
            curves = seed_mean_curves(res.get(sc.name, {}).get(m, {}))
            if curves is None:
                continue
            steps, lam, ratio, tau = curves
            if m == "da_grpo" or spec.kind != "table1":
                top.plot(steps, lam, color=f"C{i}", label=m)
            bottom.plot(steps, moving_average(list(ratio), 3), color=f"C{i}", label=f"{m} (avg 3)")
            if not tau_drawn:
                bottom.step(steps, tau, where="mid", ls="--", color="black", label="tau")
                tau_drawn = True
        top.set(title=sc.name, ylabel="lambda" if j == 0 else None)
        bottom.set(xlabel="step", ylabel="collab. ratio (train batch)" if j == 0 else None, ylim=(-0.02, 1.02))
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle(f"{spec.name}: lambda (top) and collaboration ratio vs tau (bottom), mean over seeds")
    return save_figure(fig, out / "lambda_ratio.png")


def _overlay(preset: Preset, res: dict, out: Path) -> Path:
    """Fig. 4 layout, one row per method: lambda (left) and batch ratio (right) of every scenario
    on shared axes."""
    methods = [m for m in preset.experiment.methods if m not in ("cloud_only", "naive_router", "router")]
    fig, axes = plt.subplots(len(methods), 2, figsize=(10, 3.5 * len(methods)), squeeze=False)
    for (left, right), method in zip(axes, methods):
        tau = None
        for i, sc in enumerate(preset.scenarios):
            curves = seed_mean_curves(res.get(sc.name, {}).get(method, {}))
            if curves is None:
                continue
            steps, lam, ratio, tau_values = curves
            left.plot(steps, lam, color=f"C{i}", label=sc.name)
            right.plot(steps, moving_average(list(ratio), 3), color=f"C{i}", label=sc.name)
            tau = tau_values, steps
        if tau is not None:
            right.step(tau[1], tau[0], where="mid", ls="--", color="black", label="tau")
        left.set(xlabel="step", ylabel="lambda", title=f"{method}: lambda from each initialisation")
        right.set(xlabel="step", ylabel="collab. ratio (avg 3)", ylim=(-0.02, 1.02),
                  title=f"{method}: collaboration ratio")
        left.legend(fontsize=7)
        right.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out / "lambda_init.png")


def _accuracy_vs_tau(preset: Preset, res: dict, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, m in enumerate(preset.experiment.methods):
        xs, local, joint = [], [], []
        for sc in preset.scenarios:
            cfg = report_config(preset, sc)
            task = sc.report_task(cfg)
            seeds = res.get(sc.name, {}).get(m, {})
            if not seeds:
                continue
            xs.append(task_taus(cfg)[task])
            local.append(mean_std([task_forgetting(v["evals"], cfg, task, "local")[0] for v in seeds.values()])[0])
            joint.append(mean_std([task_forgetting(v["evals"], cfg, task, "joint")[0] for v in seeds.values()])[0])
        ax.plot(xs, joint, marker="o", color=f"C{i}", label=f"{m} joint")
        ax.plot(xs, local, marker="x", ls="--", color=f"C{i}", label=f"{m} local-solved")
    ax.set(xlabel="tau", ylabel="accuracy at phase end", ylim=(-0.02, 1.02), title="Accuracy vs collaboration ratio")
    ax.legend(fontsize=7)
    return save_figure(fig, out / "accuracy_vs_tau.png")
