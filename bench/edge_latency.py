"""Benchmark: /v1/answer on the local path vs raw llama-cpp-python generating the same tokens.

    python -m bench.edge_latency [--runs 5] [--max-tokens 64] [--threads 2]

Starts the edge agent (real uvicorn on a free loopback port, real SmolLM2 GGUF, no cloud), sends
`--runs` greedy POST /v1/answer requests over HTTP, and after each one lets raw llama-cpp-python
(`Llama.create_completion`, the same model object) generate the same number of tokens for the same
rendered prompt. Both start from an empty KV cache (prefill included). Prints per-path median
latency and tokens/s, and closes with the overhead ratio agent/raw.
"""

from __future__ import annotations

import os
import statistics
import time

import httpx

from bench.edge_server import parse_args, start_agent
from collab.prompts import build_messages

QUESTION = "A train travels 60 km in 1.5 hours. What is its average speed in km/h?"


def main() -> int:
    args = parse_args(__doc__, runs=5)

    settings, model, server = start_agent(args.threads)
    prompt = model.prompt_tokens(build_messages("math", QUESTION))
    url = f"http://127.0.0.1:{settings.port}/v1/answer"
    body = {"task": "math", "question": QUESTION,
            "options": {"max_tokens": args.max_tokens, "allow_cloud": False, "temperature": 0.0}}
    agent, raw = [], []  # (seconds, completion tokens) per run
    same = 0  # runs where raw llama.cpp produced exactly the agent's text
    with httpx.Client(timeout=300) as client:
        client.post(url, json=body).raise_for_status()  # warm-up (page-in of the weights)
        for _ in range(args.runs):
            model.llama.reset()  # idle server: no request is using the model now
            t0 = time.perf_counter()
            a = client.post(url, json=body).raise_for_status().json()
            agent.append((time.perf_counter() - t0, a["completion_tokens"]))
            model.llama.reset()
            t0 = time.perf_counter()
            out = model.llama.create_completion(prompt, max_tokens=a["completion_tokens"],
                                                temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                                repeat_penalty=1.0)
            raw.append((time.perf_counter() - t0, out["usage"]["completion_tokens"]))
            same += out["choices"][0]["text"] == a["text"]
    server.should_exit = True

    print(f"model: {os.path.basename(settings.model_path)}  threads: {args.threads}  "
          f"prompt: {len(prompt)} tokens  runs: {args.runs}  route: {a['route']}  "
          f"identical text: {same}/{args.runs}")
    print(f"{'path':<28}{'median latency s':>18}{'tokens':>8}{'tokens/s':>10}")
    medians = {}
    for name, rows in (("POST /v1/answer (HTTP)", agent), ("raw llama-cpp-python", raw)):
        lat = statistics.median(s for s, _ in rows)
        toks = statistics.median(n for _, n in rows)
        medians[name] = lat
        print(f"{name:<28}{lat:>18.3f}{toks:>8.0f}{toks / lat:>10.1f}")
    ratio = medians["POST /v1/answer (HTTP)"] / medians["raw llama-cpp-python"]
    print(f"overhead: the agent's local path takes {ratio:.3f}x the raw llama-cpp-python time "
          f"for the same tokens (HTTP, validation, queue, chat template, trigger check, usage outbox).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
