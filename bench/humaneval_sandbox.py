"""Benchmark: the 164 HumanEval canonical solutions through the code sandbox.

    python -m bench.humaneval_sandbox [--workers 2] [--limit 164]

Prints the backend, wall time for the whole set, and per-program latency (mean / p50 / p95 /
max of each sandbox run's own duration). Exits non-zero if any canonical solution fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from collab import sandbox
from collab.tasks.humaneval import HumanEvalTask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="sandboxes run concurrently")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    args = parser.parse_args()

    examples = HumanEvalTask().examples("test")[: args.limit]
    print(f"backend: {sandbox._backend()}  problems: {len(examples)}  workers: {args.workers}")
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(lambda e: sandbox.run_code_tests(e.solution, e.tests, e.entry_point), examples)
        )
    total_s = time.perf_counter() - start

    durations = sorted(r.duration_s for r in results)
    failed = [e.id for e, r in zip(examples, results) if not r.passed]
    print(f"passed: {len(results) - len(failed)}/{len(results)}  failed: {failed}")
    amortised_ms = total_s / len(results) * 1000
    print(f"total wall: {total_s:.2f} s  ({amortised_ms:.1f} ms/program amortised)")
    print(
        "per program: mean {:.1f} ms  p50 {:.1f} ms  p95 {:.1f} ms  max {:.1f} ms".format(
            statistics.mean(durations) * 1000,
            durations[len(durations) // 2] * 1000,
            durations[int(len(durations) * 0.95)] * 1000,
            durations[-1] * 1000,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
