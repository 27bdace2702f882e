"""fleet.png: answers per second by route, cumulative help ratio per task against tau, and the
latency distribution per route. matplotlib (Agg) is imported here only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deploy.loadgen import Outcome
from deploy.summary import ANSWERED


def plot_fleet(outcomes: Sequence[Outcome], taus: dict[str, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_ratio, ax_lat) = plt.subplots(1, 3, figsize=(16, 4.5))
    end = max((o.t for o in outcomes), default=1.0)
    bin_s = max(1.0, end / 40)  # about 40 bars whatever the run length
    edges = [i * bin_s for i in range(int(end / bin_s) + 2)]
    for route in ANSWERED + ("rejected", "error"):
        ts = [o.t for o in outcomes if o.status == route]
        if ts:
            ax_rate.hist(ts, bins=edges, histtype="step", label=route)
    ax_rate.set(title=f"answers per {bin_s:.0f} s bin", xlabel="seconds since start",
                ylabel="requests")
    ax_rate.legend()

    for task, tau in taus.items():
        answered = [o for o in sorted(outcomes, key=lambda o: o.t)
                    if o.task == task and o.status in ANSWERED]
        helped, xs, ys = 0, [], []
        for n, o in enumerate(answered, 1):
            helped += o.requested_help
            xs.append(o.t)
            ys.append(helped / n)
        (line,) = ax_ratio.plot(xs, ys, label=f"{task} ratio")
        ax_ratio.axhline(tau, color=line.get_color(), linestyle="--", label=f"{task} tau")
    ax_ratio.set(title="cumulative help ratio vs tau", xlabel="seconds since start",
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
