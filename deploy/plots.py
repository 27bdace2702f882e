"""fleet.png: answers per second by route, each task's help ratio over time with its tau (which
`--tau-at` may change) overlaid, and the latency distribution per route. matplotlib (Agg) is
imported here only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.loadgen import Outcome
from deploy.summary import ANSWERED


RATIO_WINDOW = 10  # answers of a task per point of its ratio-over-time line


def trailing_ratio(outcomes: Sequence[Outcome], task: str, window: int = RATIO_WINDOW) -> tuple[list, list]:
    """(reply times, help ratio of the task's last `window` answers up to each): a ratio that
    follows a tau change, where a cumulative one would average it away."""
    answered = [o for o in sorted(outcomes, key=lambda o: o.t) if o.task == task and o.status in ANSWERED]
    xs, ys = [], []
    for n in range(1, len(answered) + 1):
        last = answered[max(0, n - window):n]
        xs.append(answered[n - 1].t)
        ys.append(sum(o.requested_help for o in last) / len(last))
    return xs, ys


def plot_fleet(outcomes: Sequence[Outcome], timeline: dict[str, list[tuple[float, float]]],
               path: Path, end_s: float | None = None) -> Path:
    """`timeline`: task -> [(from_s, tau), ...], the tau in force at the gateway over the load,
    which ended at `end_s` (default: the last reply)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_ratio, ax_lat) = plt.subplots(1, 3, figsize=(16, 4.5))
    end = max([o.t for o in outcomes] + [end_s or 0.0]) or 1.0
    bin_s = max(1.0, end / 40)  # about 40 bars whatever the run length
    edges = [i * bin_s for i in range(int(end / bin_s) + 2)]
    for route in ANSWERED + ("rejected", "error"):
        ts = [o.t for o in outcomes if o.status == route]
        if ts:
            ax_rate.hist(ts, bins=edges, histtype="step", label=route)
    ax_rate.set(title=f"answers per {bin_s:.0f} s bin", xlabel="seconds since start",
                ylabel="requests")
    ax_rate.legend()

    for task, steps in timeline.items():
        xs, ys = trailing_ratio(outcomes, task)
        (line,) = ax_ratio.plot(xs, ys, marker=".", label=f"{task} ratio")
        tx = [t for t, _ in steps] + [end]
        ty = [tau for _, tau in steps] + [steps[-1][1]]
        ax_ratio.step(tx, ty, where="post", color=line.get_color(), linestyle="--", label=f"{task} tau")
        for t, _ in steps[1:]:
            ax_ratio.axvline(t, color="grey", linewidth=0.6)
    ax_ratio.set(title=f"help ratio (last {RATIO_WINDOW} answers) vs tau", xlabel="seconds since start",
                 ylabel="help requests / answers", ylim=(-0.02, 1.05))
    ax_ratio.legend()

    for route in ANSWERED:
        lat = sorted(o.latency_s for o in outcomes if o.status == route)
        if lat:
            ax_lat.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=route)
    ax_lat.set(title="answer latency CDF", xlabel="seconds", ylabel="fraction")
    ax_lat.legend()

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
