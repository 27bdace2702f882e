"""The `dagrpo` command: one entry point, subcommands that import their runtime lazily.

Each subcommand lives in a light module that defines `register(subparsers)` (argparse only, no
heavy imports at module level) and sets `func` on its parser; the runtime (torch, llama_cpp,
grpc, ...) is imported inside that function. `dagrpo --help` therefore never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dagrpo.errors import UserError

# name -> module defining register(subparsers). Order is the order shown in --help.
COMMAND_MODULES: dict[str, str] = {
    "demo": "trainer.cli",
    "train": "trainer.cli",
    "eval": "trainer.cli",
    "calibrate": "trainer.cli",
    "experiment": "trainer.cli_experiment",
    "simulate": "trainer.sim.cli",
    "tasks": "collab.cli",
    "grade": "collab.cli",
    "gateway": "cloud_gateway.cli",
    "edge": "edge_agent.cli",
    "export-adapter": "edge_agent.cli",
    "fleet": "deploy.fleet_cli",
    "bench": "bench.cli",
    "doctor": "dagrpo.doctor",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagrpo",
        description="Budget-aware edge/cloud LLM collaboration with DA-GRPO.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--log-level", dest="global_log_level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="logging threshold (default warning; debug shows llama.cpp's own log)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(COMMAND_MODULES.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a runtime package whose issue has not landed
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def _version() -> str:
    from dagrpo import __version__

    return f"dagrpo {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.global_log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"dagrpo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dagrpo {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
