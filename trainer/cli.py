"""`dagrpo demo`, `dagrpo train`, `dagrpo eval`: argument parsing only; runtimes load lazily."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="the main job: a short two-phase DA-GRPO run on SmolLM2 with the reference cloud",
        description="Train SmolLM2-135M (LoRA) with DA-GRPO on task group 1 then group 2 (tau 0.3), "
        "against the in-process reference cloud, then print accuracy per phase, forgetting, the final "
        "collaboration ratio vs tau and lambda, and write plots. Sized for ~6-10 minutes on 2 CPU cores.",
    )
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo; replaced)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a demo setting, e.g. --set train.G=4 (repeatable)")
    demo.set_defaults(func=_demo)

    train = subparsers.add_parser(
        "train", help="train with DA-GRPO from a TOML config",
        description="Run the continual DA-GRPO protocol described by a TOML config (see configs/). "
        "Writes config.toml, metrics.jsonl, evals.jsonl, adapter/, state.json and PNG plots to --out.",
    )
    train.add_argument("--config", help="TOML preset (configs/smoke.toml, demo.toml, paper.toml)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value: --set train.lr=1e-5 --set phases.0.steps=3")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    train.add_argument("--max-steps", type=int, default=None,
                       help="stop (resumably) after this many global steps")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    ev = subparsers.add_parser(
        "eval", help="evaluate a trained adapter on held-out test sets",
        description="Greedy evaluation of a run's adapter (or any adapter directory) on the test "
        "split of every task in the run's phases: local-solved accuracy, joint accuracy, collab ratio.",
    )
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory written by `dagrpo train`")
    src.add_argument("--adapter", help="a peft LoRA adapter directory (use with --config)")
    ev.add_argument("--config", help="config for --adapter (model, tasks, cloud); default: the demo's")
    ev.add_argument("--n", type=int, default=None, help="test examples per task (default: train.eval_n)")
    ev.add_argument("--tasks", default=None, help="comma-separated tasks (default: all of the run's)")
    ev.add_argument("--base", action="store_true", help="evaluate the base model without the adapter")
    ev.set_defaults(func=_eval)

    cal = subparsers.add_parser(
        "calibrate", help="the help bias that makes a trained adapter ask on a share tau of queries",
        description="Score every validation query's wish to ask (llama.cpp, the run's adapter), set the "
        "help bias at the quantile that gives help rate tau, check it on the test split (predicted and "
        "decoded), and write RUN_DIR/help_bias.json for the edge agent. See docs/edge.md#the-help-knob.",
    )
    cal.add_argument("--run", required=True, help="a run directory written by `dagrpo train` or `dagrpo demo`")
    cal.add_argument("--tau", type=float, action="append", required=True,
                     help="budget to calibrate for (repeatable: --tau 0.1 --tau 0.3)")
    cal.add_argument("--tasks", default=None, help="comma-separated tasks (default: the run's evaluated tasks)")
    cal.add_argument("--n-val", type=int, default=128, help="validation queries per task (default 128)")
    cal.add_argument("--n-test", type=int, default=128, help="test queries per task (default 128)")
    cal.add_argument("--max-new-tokens", type=int, default=None, help="default: the run's eval setting")
    cal.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    cal.add_argument("--no-verify", action="store_true",
                     help="skip decoding the test split with each bias (report the predicted rate only)")
    cal.set_defaults(func=_calibrate)


def _demo(args: argparse.Namespace) -> int:
    from llama_runtime.probe import require_llama
    from trainer.commands import demo
    from trainer.models import smollm2_gguf_path

    require_llama(str(smollm2_gguf_path()))  # a llama.cpp built for another CPU stops here, with the fix

    return demo(args.out, args.set)


def _calibrate(args: argparse.Namespace) -> int:
    from trainer.calibrate import calibrate_run, print_calibration

    if args.n_val < 1 or args.n_test < 1:
        raise SystemExit("dagrpo calibrate: --n-val and --n-test must be >= 1")
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    result = calibrate_run(args.run, args.tau, tasks=tasks, n_val=args.n_val, n_test=args.n_test,
                           max_new_tokens=args.max_new_tokens, threads=args.threads, verify=not args.no_verify)
    print_calibration(result)
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.commands import train_command

    return train_command(args.config, args.set, args.out, resume=args.resume, max_steps=args.max_steps,
                         progress=not args.no_progress)


def _eval(args: argparse.Namespace) -> int:
    from trainer.commands import eval_command

    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    return eval_command(run=args.run, adapter=args.adapter, config=args.config, n=args.n, tasks=tasks,
                        base=args.base)
