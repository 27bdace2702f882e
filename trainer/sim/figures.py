"""The studies' figures (matplotlib, Agg): Fig. 10 and Fig. 4 analogues, gap vs responses, J_c(lambda)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.plots import moving_average, plt, save_figure, tau_segments
from trainer.sim import game

SPREAD = np.array([(k + 0.5) / 8 for k in range(8)])


def draw(name: str, rows: list[dict], figs: dict, out: Path) -> list[Path]:
    if name == "schedules":
        return [_grid(figs[s], out / f"schedules_{s}.png", f"{s} scale: lambda (top), ratio vs tau (bottom), "
                      "the paper's DA-GRPO, seed 0") for s in figs]
    if name == "lambda_init":
        return [_inits(figs[s], out / f"lambda_init_{s}.png", s) for s in figs]
    if name == "responses":
        return [_responses(rows, out / "responses_gap.png")]
    if name == "controllers":
        return [_grid(figs[s], out / f"controllers_{s}.png", f"{s} scale, schedule up: ascent vs pid, seed 0")
                for s in figs]
    if name == "classes":
        return [_jc_curves(out / "classes_jc.png")]
    return []


def _window(records: list[dict]) -> int:
    return 1 if records[0]["responses"] >= 512 else 20


def _grid(runs: dict, path: Path, title: str) -> Path:
    fig, axes = plt.subplots(2, len(runs), figsize=(3.2 * len(runs), 5), sharex=True, squeeze=False)
    for j, (label, rec) in enumerate(runs.items()):
        steps = [r["step"] for r in rec]
        top, bot = axes[0, j], axes[1, j]
        top.plot(steps, [r["lambda_next"] for r in rec], color="black", lw=1)
        top.set(title=str(label), ylabel="lambda" if j == 0 else None)
        ratios = [r["collab_ratio"] for r in rec]
        bot.plot(steps, ratios, color="C0", alpha=0.25, lw=0.5)
        bot.plot(steps, moving_average(ratios, _window(rec)), color="C3", lw=1)
        for first, last, tau in tau_segments(rec):
            bot.hlines(tau, first, last, colors="black", linestyles="--", lw=1)
        bot.set(xlabel="step", ylabel="ratio" if j == 0 else None, ylim=(-0.02, 1.02))
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def _inits(runs: dict, path: Path, scale: str) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (lam, rec) in enumerate(runs.items()):
        steps = [r["step"] for r in rec]
        left.plot(steps, [r["lambda_next"] for r in rec], color=f"C{i}", label=f"lambda_init {lam:g}")
        right.plot(steps, moving_average([r["collab_ratio"] for r in rec], 20), color=f"C{i}")
    right.axhline(0.3, color="black", ls="--", lw=1)
    left.set(xlabel="step", ylabel="lambda", title=f"{scale} scale: lambda from each initialisation")
    right.set(xlabel="step", ylabel="ratio (moving avg 20)", ylim=(-0.02, 1.02), title="ratio vs tau 0.3")
    left.legend(fontsize=7)
    return save_figure(fig, path)


def _responses(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, ctrl in enumerate(("ascent", "pid")):
        sel = sorted((r for r in rows if r["controller"] == ctrl and r["G"] == 8), key=lambda r: r["responses"])
        ax.plot([r["responses"] for r in sel], [r["gap"] for r in sel], marker="o", color=f"C{i}", label=f"{ctrl}: gap")
        ax.plot([r["responses"] for r in sel], [r["bias"] for r in sel], marker="x", ls=":", color=f"C{i}",
                label=f"{ctrl}: bias")
    n = np.array([8, 1024])
    taus = np.array([0.1, 0.3, 0.5, 0.7])
    floor = np.mean(np.sqrt(taus * (1 - taus))) * np.sqrt(2 / np.pi) / np.sqrt(n)  # E|N(0, tau(1-tau)/n)|
    ax.plot(n, floor, color="grey", ls="--", label="binomial noise floor")
    ax.set(xscale="log", xlabel="responses per step (B x G, G = 8)", ylabel="last-quarter gap",
           title="Tracking gap vs responses per step (schedules up, mixed_b)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _jc_curves(path: Path) -> Path:
    lams = np.linspace(0, 1.2, 400)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, p in (("spread, 8 classes", SPREAD), ("equal p 0.5", np.array([0.5])), ("equal p 0 (SmolLM2)", np.array([0.0]))):
        w = np.full(len(p), 1 / len(p))
        ax.plot(lams, [game.expected_ratio(game.best_response(p, lam, 0.97), w, 0.0) for lam in lams], label=label)
    for tau in (0.1, 0.3, 0.5, 0.7):
        ax.axhline(tau, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="lambda", ylabel="J_c of the best response", title="J_c(theta*(lambda)): where tau can be met")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
