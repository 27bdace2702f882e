"""`dagrpo simulate`: argument parsing only; the simulator (numpy, matplotlib) loads lazily."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate the collaboration game: the dual loop at any scale in seconds",
        description="Run DA-GRPO's dual loop on a model of the collaboration game (difficulty classes, a "
        "softmax policy over answer/ask per class, the trainer's own advantages, lambda controllers and "
        "eq. 8 estimator). One run writes metrics.jsonl, summary.json and the trainer's plots to --out; "
        "--study writes a study's JSON, Markdown and PNG figures. See docs/simulator.md.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="paper_scale", help="configs/sim/NAME.toml: paper_scale (default), micro_scale")
    src.add_argument("--config", help="a simulator TOML file instead of a preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value: --set train.lambda_controller=pid --set sim.taus=[0.3] (repeatable)")
    p.add_argument("--out", default=None, help="output directory (default: runs/sim/<preset or study>)")
    p.add_argument("--study", default=None,
                   help="run a study instead of one run: schedules, lambda_init, responses, controllers, ask_init, "
                   "classes, options, or all")
    p.add_argument("--seeds", type=int, default=3, help="--study: seeds per cell (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.sim.config import load_sim_config, preset_path

    if args.study:
        from trainer.sim.studies import run_studies

        out = Path(args.out or f"runs/sim/study-{args.study}")
        for path in run_studies(args.study, out, seeds=args.seeds, overrides=args.set, progress=not args.no_progress):
            print(path)
        return 0
    from trainer.sim.run import write_run

    cfg = load_sim_config(args.config or preset_path(args.preset), args.set)
    out = Path(args.out or f"runs/sim/{Path(args.config).stem if args.config else args.preset}")
    summary = write_run(cfg, out, progress=not args.no_progress)
    for seg in summary["segments"]:
        print(f"tau {seg['tau']:.2f}: last-quarter ratio {seg['ratio_mean']:.3f}, gap {seg['gap']:.3f}, "
              f"bias {seg['bias']:.3f}, lambda {seg['lambda_end']:.3f}")
    print(f"mean gap {summary['gap']:.3f} (bias {summary['bias']:.3f}); wrote {out}")
    return 0
