"""PNG plots of a run (matplotlib, Agg backend), modelled on the paper's figures 3, 4, 5 and 10.

- lambda.png: lambda over steps, background shaded per tau segment (figs. 4, 5, 10 top)
- ratio.png: measured collaboration ratio per step (and its moving average) against tau (fig. 10 bottom)
- accuracy.png: joint (solid) and local-solved (dashed) accuracy per task at each evaluation (fig. 3)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainer.checkpoint import read_jsonl  # noqa: E402

_COLORS = plt.get_cmap("tab10").colors


def tau_segments(metrics: list[dict]) -> list[tuple[int, int, float]]:
    """Runs of constant tau as (first step, last step, tau)."""
    segments: list[tuple[int, int, float]] = []
    for m in metrics:
        if segments and segments[-1][2] == m["tau"]:
            segments[-1] = (segments[-1][0], m["step"], m["tau"])
        else:
            segments.append((m["step"], m["step"], m["tau"]))
    return segments


def _shade(ax, metrics: list[dict]) -> None:
    taus = sorted({m["tau"] for m in metrics})
    for first, last, tau in tau_segments(metrics):
        color = _COLORS[taus.index(tau) % len(_COLORS)]
        ax.axvspan(first - 0.5, last + 0.5, color=color, alpha=0.12, lw=0)
        ax.text((first + last) / 2, 1.0, f"tau={tau:g}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)


def moving_average(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_run(run_dir: str | Path) -> list[Path]:
    run_dir = Path(run_dir)
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    evals = read_jsonl(run_dir / "evals.jsonl")
    if not metrics:
        return []
    steps = [m["step"] for m in metrics]
    written = []

    fig, ax = plt.subplots(figsize=(7, 3.5))
    _shade(ax, metrics)
    ax.plot(steps, [m["lambda_next"] for m in metrics], marker=".", color="black")
    ax.set(xlabel="step", ylabel="lambda (after update)")
    ax.set_title("Dual variable", pad=14)
    written.append(save_figure(fig, run_dir / "lambda.png"))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    _shade(ax, metrics)
    ratios = [m["collab_ratio"] for m in metrics]
    ax.plot(steps, ratios, marker=".", alpha=0.5, label="batch ratio")
    ax.plot(steps, moving_average(ratios, 5), color="C3", label="moving avg (5)")
    ax.step(steps, [m["tau"] for m in metrics], where="mid", ls="--", color="black", label="tau")
    ax.set(xlabel="step", ylabel="collaboration ratio", ylim=(-0.02, 1.02))
    ax.set_title("Collaboration ratio vs tau", pad=14)
    ax.legend(fontsize=8)
    written.append(save_figure(fig, run_dir / "ratio.png"))

    if evals:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for i, task in enumerate(dict.fromkeys(e["task"] for e in evals)):
            rows = [e for e in evals if e["task"] == task]
            ax.plot([e["step"] for e in rows], [e["joint_accuracy"] for e in rows], marker="o",
                    color=_COLORS[i], label=f"{task} joint")
            local = [e for e in rows if e["local_accuracy"] is not None]
            ax.plot([e["step"] for e in local], [e["local_accuracy"] for e in local], marker="x", ls="--",
                    color=_COLORS[i], label=f"{task} local-solved")
        for m_prev, m in zip(metrics, metrics[1:]):
            if m["phase"] != m_prev["phase"]:
                ax.axvline(m_prev["step"], color="grey", ls=":")
        ax.set(xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title="Held-out accuracy per task")
        ax.legend(fontsize=7, ncol=2)
        written.append(save_figure(fig, run_dir / "accuracy.png"))
    return written


def save_figure(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
