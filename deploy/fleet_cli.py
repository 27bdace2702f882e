"""`dagrpo fleet`: argparse only at import; the driver (`deploy.fleet`) loads inside the command."""

from __future__ import annotations

import argparse
import time

from dagrpo.errors import UserError

# flag -> (FleetConfig field, type, help). Defaults live in FleetConfig only.
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--devices": ("devices", int, "edge agents to start (default 3)"),
    "--duration": ("duration_s", float, "seconds of load (default 60)"),
    "--rate": ("rate", float, "requests per second for the whole fleet (default 1)"),
    "--tasks": ("tasks", str, "comma-separated built-in tasks to ask (default math,science)"),
    "--tau": ("tau", float, "tau of every fleet task at the gateway (default 0.3)"),
    "--mode": ("mode", str, "gateway budget mode: meter | enforce (default enforce)"),
    "--burst": ("burst", float, "credit cap in help requests (default 2)"),
    "--window": ("window", int, "responses per gateway ratio window (default 256)"),
    "--max-tokens": ("max_tokens", int, "local token cap per answer (default 128)"),
    "--temperature": ("temperature", float, "local sampling temperature (default 0: greedy)"),
    "--per-task": ("per_task", int, "test examples per task to cycle through (default 500)"),
    "--redis-url": ("redis_url", str, "gateway store redis://host:port/db (default: embedded SQLite)"),
    "--backend": ("backend", str, "cloud backend: reference | openai (GATEWAY_OPENAI_* env)"),
    "--cloud-latency": ("cloud_latency_s", float, "reference backend: seconds added per call"),
    "--adapter": ("adapter", str, "LoRA adapter every agent loads (GGUF, peft dir or run dir)"),
    "--help-bias-file": ("help_bias_file", str, "with --help-knob: the agents' calibration "
                         "(help_bias.json of `dagrpo calibrate`)"),
    "--threads": ("threads", int, "llama.cpp threads per agent (default 1)"),
    "--queue-size": ("queue_size", int, "requests an agent queues before answering 503 (default 16)"),
    "--flush-interval": ("flush_interval_s", float, "agents' usage flush period in s (default 1)"),
    "--out": ("out_dir", str, "run directory (default runs/fleet-<UTC time>)"),
    "--linger": ("linger_s", float, "seconds to keep everything up after the counts settle"),
    "--drain": ("drain_s", float, "most seconds to wait for requests in flight (default 120)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fleet", help="run a gateway, N edge agents and a load generator as local processes",
        description="The docker-compose topology on one machine: a gateway (SQLite, or Redis with "
                    "--redis-url), N edge agents with their own device keys, and a load generator "
                    "sending built-in task questions at --rate. Shows a live table per device and "
                    "writes summary.json, answers.jsonl, fleet.png, logs/ and "
                    "prometheus-targets.json (file_sd) to --out. Ctrl-C stops every process it "
                    "started. See docs/fleet.md.")
    for flag, (dest, typ, text) in _FLAGS.items():
        p.add_argument(flag, dest=dest, type=typ, help=text)
    p.add_argument("--tau-at", dest="tau_at", action="append", default=[], metavar="SECONDS:[TASK=]TAU",
                   help="change tau at SECONDS after the load starts, for every task or one "
                        "(repeatable: --tau-at 60:0.1 --tau-at 120:math=0.5), through the gateway's "
                        "admin SetTau like `dagrpo gateway set-tau`")
    p.add_argument("--help-knob", dest="help_knob", action="store_true", default=None,
                   help="agents hold the gateway's tau with the help knob (EDGE_HELP_KNOB)")
    p.add_argument("--no-live", dest="live", action="store_false", default=None,
                   help="print a progress line every 10 s instead of the live table")
    p.add_argument("--tls", action="store_const", const=True, default=None,
                   help="mutual TLS on every gateway connection (a CA and certificates in OUT/certs)")
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace):
    from pydantic import ValidationError

    from deploy.fleet import FleetConfig
    from deploy.tau_changes import parse_tau_at

    values = {dest: getattr(args, dest) for dest, _, _ in _FLAGS.values()
              if getattr(args, dest, None) is not None}
    for flag in ("live", "help_knob", "tls"):
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    try:
        values["tau_changes"] = [parse_tau_at(t) for t in args.tau_at]
    except ValueError as exc:
        raise UserError(f"--tau-at: {exc}") from None
    if "tasks" in values:
        values["tasks"] = [t.strip() for t in values["tasks"].split(",") if t.strip()]
    values.setdefault("out_dir", time.strftime("runs/fleet-%Y%m%dT%H%M%SZ", time.gmtime()))
    try:
        return FleetConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise UserError(f"fleet setting {where!r}: {err['msg']}") from None


def _run(args: argparse.Namespace) -> int:
    import json

    from deploy.fleet import run_fleet

    cfg = _config(args)
    try:
        summary = run_fleet(cfg)
    except RuntimeError as exc:  # a child failed to start: its log tail is in the message
        raise UserError(str(exc)) from None
    t = summary["total"]
    print(json.dumps({k: t[k] for k in ("answers", "answers_per_s", "help_requests", "ratio",
                                        "denials", "cloud", "rejected", "errors",
                                        "latency_p50_s", "latency_p99_s")}))
    for c in summary["tau_changes"]:
        print(f"tau of {c['task']} {c['tau_before']:g} -> {c['tau_after']:g} at {c['at_s']:g} s: ratio in the "
              f"last quarter before {_fmt(c['ratio_before'])} ({c['answers_before']} answers), after "
              f"{_fmt(c['ratio_after'])} ({c['answers_after']} answers)")
    print(f"summary: {cfg.out_dir / 'summary.json'}  plots: {cfg.out_dir / 'fleet.png'}")
    if not summary["agrees_with_gateway"]:
        print("WARNING: the fleet's counts differ from the gateway's totals (see summary.json)")
        return 1
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
