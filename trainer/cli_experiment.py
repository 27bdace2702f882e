"""`dagrpo experiment`: argument parsing only; the driver (trainer.experiment.driver) loads lazily."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="run every method and seed of a paper experiment preset, resumably",
        description="Run all (scenario, method, seed) runs of a preset in configs/experiments/ "
        "(micro_table1, micro_lambda_init, micro_tau_schedules, micro_tau_sweep, smollm2_table1, "
        "paper_table1, ...), each in its own run directory under --out; finished runs are skipped, "
        "interrupted ones resume. Writes results.json, results.md (the paper's table layout) and "
        "figures. See docs/experiments.md.",
    )
    p.add_argument("--config", required=True, help="experiment preset TOML (configs/experiments/*.toml)")
    p.add_argument("--out", default=None, help="experiment directory (default: runs/experiments/<name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the preset's [base] training config, e.g. --set train.eval_n=4 (repeatable)")
    p.add_argument("--methods", default=None, help="comma-separated subset of the preset's methods")
    p.add_argument("--seeds", default=None, help="comma-separated subset of the preset's seeds")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of the preset's scenarios")
    p.add_argument("--report-only", action="store_true", help="run nothing; rebuild the report from finished runs")
    p.set_defaults(func=_experiment)


def _split(text: str | None, cast=str):
    return None if text is None else [cast(x.strip()) for x in text.split(",") if x.strip()]


def _experiment(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from dagrpo.errors import UserError
    from trainer.experiment.driver import run_all
    from trainer.experiment.preset import load_preset

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    preset = load_preset(args.config, args.set)
    try:
        seeds = _split(args.seeds, int)
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    methods, scenarios = _split(args.methods), _split(args.scenarios)
    for name, chosen, known in (("--methods", methods, preset.experiment.methods),
                                ("--seeds", seeds, preset.experiment.seeds),
                                ("--scenarios", scenarios, [s.name for s in preset.scenarios])):
        bad = [x for x in chosen or [] if x not in known]
        if bad:
            raise UserError(f"{name}: {bad} not in the preset (has {known})")
    out = Path(args.out or f"runs/experiments/{preset.experiment.name}")
    summary = run_all(preset, out, methods=methods, seeds=seeds, scenarios=scenarios,
                      report_only=args.report_only)
    print((out / "results.md").read_text())
    print(f"{summary['finished_runs']}/{summary['total_runs']} runs finished; results in {out}")
    return 0
