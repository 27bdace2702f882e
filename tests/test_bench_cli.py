"""`dagrpo bench`: lists the benchmarks in bench/ and refuses unknown names with one line."""

import subprocess
import sys

from bench.cli import available


def _dagrpo(*args):
    return subprocess.run(
        [sys.executable, "-m", "dagrpo.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_available_finds_every_benchmark_with_its_docstring():
    benches = available()
    assert {"train_step", "gateway_load", "edge_latency", "humaneval_sandbox"} <= set(benches)
    assert "cli" not in benches
    assert all(doc for doc in benches.values())


def test_bench_list_and_unknown_name():
    listed = _dagrpo("bench", "list")
    assert listed.returncode == 0
    assert "gateway_load" in listed.stdout
    unknown = _dagrpo("bench", "no_such_bench")
    assert unknown.returncode == 2
    assert "unknown benchmark 'no_such_bench'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
