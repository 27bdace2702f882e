"""`dagrpo bench NAME [ARGS...]`: run one of the benchmarks in bench/ (each prints its numbers)."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from dagrpo.errors import UserError

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHES = {"__init__", "cli", "edge_server"}  # edge_server: what the edge benchmarks share


def available() -> dict[str, str]:
    """Benchmark name -> first line of its docstring."""
    found = {}
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.stem in NOT_BENCHES:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark from bench/ (e.g. train_step, gateway_load, edge_latency)",
        description="Run a benchmark; arguments after NAME go to the benchmark "
        "(`dagrpo bench NAME --help` shows them). `dagrpo bench list` lists them.",
    )
    p.add_argument("name", help="benchmark name, or 'list'")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    benches = available()
    if args.name == "list":
        for name, doc in benches.items():
            print(f"{name:<22} {doc}")
        return 0
    if args.name not in benches:
        raise UserError(f"unknown benchmark {args.name!r}; available: {', '.join(benches)}")
    cmd = [sys.executable, "-m", f"bench.{args.name}", *args.args]
    return subprocess.call(cmd, cwd=BENCH_DIR.parent)
