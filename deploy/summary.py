"""Fleet tallies from load-generator outcomes, pure: per device (the live table), per task (ratio
vs tau) and the run summary written to summary.json.

An *answer* is a reply from an agent (route local, cloud or fallback); `rejected` (503, queue
full) and `error` requests are counted apart and carry no help decision. The help ratio is
help requests / answers, the quantity the gateway's tau bounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from deploy.loadgen import Outcome
from deploy.stats import percentile, ratio

ANSWERED = ("local", "cloud", "fallback")


def _tally(outs: Sequence[Outcome]) -> dict:
    answered = [o for o in outs if o.status in ANSWERED]
    lat = [o.latency_s for o in answered]
    helped = sum(o.requested_help for o in answered)
    return {
        "answers": len(answered),
        "help_requests": helped,
        "ratio": ratio(helped, len(answered)),
        "cloud": sum(o.status == "cloud" for o in outs),
        "denials": sum(o.denied for o in outs),
        "rejected": sum(o.status == "rejected" for o in outs),
        "errors": sum(o.status == "error" for o in outs),
        "latency_p50_s": percentile(lat, 50),
        "latency_p99_s": percentile(lat, 99),
    }


def _by(outcomes: Iterable[Outcome], key: str, names: Sequence[str] = ()) -> dict[str, list[Outcome]]:
    groups: dict[str, list[Outcome]] = {n: [] for n in names}
    for o in outcomes:
        groups.setdefault(getattr(o, key), []).append(o)
    return groups


def device_rows(outcomes: Sequence[Outcome], devices: Sequence[str]) -> dict[str, dict]:
    """device -> tally, every named device present (zeros before its first answer)."""
    return {d: _tally(outs) for d, outs in _by(outcomes, "device", devices).items()}


def task_rows(outcomes: Sequence[Outcome], taus: dict[str, float]) -> dict[str, dict]:
    """task -> tally with `tau` (configured) and `ratio_minus_tau`."""
    rows = {}
    for task, outs in _by(outcomes, "task", list(taus)).items():
        row = _tally(outs)
        row["tau"] = taus.get(task)
        row["ratio_minus_tau"] = (None if row["ratio"] is None or row["tau"] is None
                                  else row["ratio"] - row["tau"])
        rows[task] = row
    return rows


def summarize(outcomes: Sequence[Outcome], devices: Sequence[str], taus: dict[str, float],
              wall_s: float) -> dict:
    """The run summary: totals, answers per second over `wall_s` seconds, latency percentiles."""
    total = _tally(outcomes)
    lat = [o.latency_s for o in outcomes if o.status in ANSWERED]
    total.update({
        "requests": len(outcomes),
        "answers_per_s": total["answers"] / wall_s if wall_s > 0 else None,
        "latency_p90_s": percentile(lat, 90),
        "latency_max_s": max(lat, default=None),
    })
    return {"devices": len(devices), "load_wall_s": wall_s, "total": total,
            "per_task": task_rows(outcomes, taus), "per_device": device_rows(outcomes, devices)}


# fleet tally -> the gateway store's counter of the same thing
GATEWAY_NAMES = {"answers": "responses", "help_requests": "help_requests", "denials": "denials",
                 "cloud": "cloud_calls"}


def counts_agree(rows: dict[str, dict], gateway: dict[str, dict]) -> bool:
    """The fleet's counts equal the gateway's, row by row (rows: per task or per device)."""
    return all(rows[name][ours] == gateway.get(name, {}).get(theirs, 0)
               for name in rows for ours, theirs in GATEWAY_NAMES.items())


def tau_segments(outcomes: Sequence[Outcome], task: str, steps: Sequence[tuple[float, float]],
                 end_s: float) -> list[dict]:
    """One row per stretch of constant tau of `task` (`steps`: [(from_s, tau), ...]; the last
    stretch ends at `end_s`): its answers, ratio, and the ratio in its last quarter (by time), where
    the devices have had three quarters of the stretch to follow the change."""
    answered = [o for o in outcomes if o.task == task and o.status in ANSWERED]
    rows = []
    for i, (start, tau) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else max(end_s, start)
        last = i + 1 == len(steps)
        inside = [o for o in answered if start <= o.t < end or (last and o.t == end)]
        q_start = end - (end - start) / 4
        quarter = [o for o in inside if o.t >= q_start]
        rows.append({"from_s": start, "to_s": end, "tau": tau, **_ratio_of(inside),
                     "last_quarter": {"from_s": q_start, **_ratio_of(quarter)}})
    return rows


def _ratio_of(answered: Sequence[Outcome]) -> dict:
    helped = sum(o.requested_help for o in answered)
    return {"answers": len(answered), "help_requests": helped, "ratio": ratio(helped, len(answered))}


def tau_change_rows(segments: dict[str, list[dict]]) -> list[dict]:
    """Per task and tau change: the tau and the last-quarter ratio before and after it."""
    rows = []
    for task, segs in segments.items():
        for before, after in zip(segs, segs[1:]):
            rows.append({"task": task, "at_s": after["from_s"], "tau_before": before["tau"],
                         "tau_after": after["tau"], "ratio_before": before["last_quarter"]["ratio"],
                         "answers_before": before["last_quarter"]["answers"],
                         "ratio_after": after["last_quarter"]["ratio"],
                         "answers_after": after["last_quarter"]["answers"]})
    return sorted(rows, key=lambda r: (r["at_s"], r["task"]))
