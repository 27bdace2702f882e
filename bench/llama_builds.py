"""Benchmark: llama.cpp decode speed of the portable build next to other builds of llama-cpp-python.

    python -m bench.llama_builds [--build NAME=DIR ...] [--tokens 128] [--batch 8] [--threads 2]

Each build is measured in a child process (so one that dies with SIGILL is reported, not fatal):
the venv's own llama-cpp-python as `installed`, and every `--build NAME=DIR` with DIR put first on
PYTHONPATH (a `pip install --target DIR` of another wheel, e.g. one built with
`LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON ..."`). Per build it prints the CPU features
llama.cpp was compiled with, single-stream greedy tok/s (`Llama.create_completion`) and batched
sampling tok/s (llama_runtime.llm.BatchSampler: one prompt, --batch sequences, the trainer's
rollout path), each the median of --runs runs, on the SmolLM2 Q4_1 GGUF.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, statistics, sys, time
import llama_cpp
from llama_runtime.llm import BatchSampler, route_llama_logs
from edge_agent.settings import default_model_path
tokens, batch, threads, runs = map(int, sys.argv[1:5])
route_llama_logs()
path = default_model_path()
features = [f.split(" = ")[0] for f in llama_cpp.llama_print_system_info().decode().split(" | ") if f.endswith(" = 1")]
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
prompt = "Write a short story about a robot who learns to paint."
single = []
for _ in range(runs):
    llm.reset()
    t0 = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0,
                                logit_bias={llm.token_eos(): -100.0})  # a fixed number of tokens
    single.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t0))
ids = llm.tokenize(prompt.encode("utf-8"))
del llm
sampler = BatchSampler(path, n_seq_max=batch, n_ctx=2048, threads=threads)
batched = []
for r in range(runs):
    t0 = time.perf_counter()
    out = sampler.sample([ids], batch, tokens, 1.0, seed=r, eos=set())
    n = sum(len(t) for t, _ in out[0])
    batched.append(n / (time.perf_counter() - t0))
print(json.dumps({"features": features, "single_tok_s": statistics.median(single),
                  "batched_tok_s": statistics.median(batched)}))
"""


def measure(name: str, path: str | None, args) -> dict:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, env.get("PYTHONPATH", ""), os.getcwd()])
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(args.tokens), str(args.batch), str(args.threads), str(args.runs)],
        capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        from llama_runtime.probe import crash_detail

        return {"build": name, "error": crash_detail(proc.returncode, proc.stderr, "llama.cpp")}
    return {"build": name, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                    help="another llama-cpp-python install (pip install --target DIR)")
    ap.add_argument("--tokens", type=int, default=128, help="new tokens per stream")
    ap.add_argument("--batch", type=int, default=8, help="sequences in the batched measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    builds = [("installed", None)] + [tuple(b.split("=", 1)) for b in args.build]
    rows = [measure(name, path, args) for name, path in builds]
    print(f"{'build':<14} {'single tok/s':>12} {'batched tok/s':>14}  features")
    for r in rows:
        if "error" in r:
            print(f"{r['build']:<14} {'-':>12} {'-':>14}  {r['error']}")
        else:
            print(f"{r['build']:<14} {r['single_tok_s']:>12.1f} {r['batched_tok_s']:>14.1f}  {','.join(r['features'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
