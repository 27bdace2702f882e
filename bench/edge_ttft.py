"""Benchmark: time to first token and tokens/s of the agent's streaming chat vs raw llama-cpp-python and its OpenAI server.

    python -m bench.edge_ttft [--runs 3] [--max-tokens 64] [--threads 2]

Three paths, one model file (the SmolLM2 GGUF), the same rendered prompt (the paper's F.1 math
prompt), greedy, one run at a time:
1. the agent's `POST /v1/chat/completions` with `stream: true` (real uvicorn on loopback, no
   cloud), through the `openai` client;
2. raw llama-cpp-python, `create_completion(stream=True)` on the agent's own model object;
3. llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, a subprocess), through the
   same `openai` client.
TTFT is the time from sending the request to the first non-empty text; tokens/s is the decode
rate after it, (tokens - 1) / (last - first). Every run asks a different question (a case number
at its end) and nothing is reset, so every path reuses the cached system-prompt prefix the same
way (llama.cpp keeps the longest common prefix) and prefills the rest: the usual serving case.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request

import openai

from bench.edge_server import free_port, parse_args, start_agent
from collab.prompts import build_messages

QUESTION = "A train travels 60 km in 1.5 hours. What is its average speed in km/h? (case {})"


def _wait(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.2)


def _timed(pieces) -> tuple[float, float, int]:
    """(ttft s, tokens/s after the first, pieces) of an iterator of text pieces, timed from now."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    for text in pieces:
        if text:
            last = time.perf_counter()
            first = first or last
            n += 1
    rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
    return first - t0, rate, n


def _chat(client: openai.OpenAI, model: str, messages, max_tokens: int, **extra):
    stream = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                            temperature=0.0, stream=True, **extra)
    return (c.choices[0].delta.content if c.choices else None for c in stream)


def main() -> int:
    args = parse_args(__doc__, runs=3)

    settings, model, agent = start_agent(args.threads)
    server_port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", settings.model_path, "--host", "127.0.0.1",
         "--port", str(server_port), "--n_ctx", str(settings.n_ctx), "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
         "--model_alias", "smollm2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: dict[str, list[tuple[float, float, int]]] = {}
    try:
        _wait(f"http://127.0.0.1:{server_port}/v1/models", server)
        to_agent = openai.OpenAI(base_url=f"http://127.0.0.1:{settings.port}/v1", api_key="none")
        to_server = openai.OpenAI(base_url=f"http://127.0.0.1:{server_port}/v1", api_key="none")
        paths = {
            "agent /v1/chat/completions": lambda m: _chat(to_agent, "dagrpo-math", m, args.max_tokens,
                                                          extra_body={"dagrpo": {"allow_cloud": False}}),
            "raw llama-cpp-python": lambda m: (c["choices"][0]["text"] for c in model.llama.create_completion(
                model.prompt_tokens(m), max_tokens=args.max_tokens, temperature=0.0, top_k=0, top_p=1.0,
                min_p=0.0, repeat_penalty=1.0, stream=True)),
            "llama_cpp.server (OpenAI)": lambda m: _chat(to_server, "smollm2", m, args.max_tokens),
        }
        for run in range(-1, args.runs):  # run -1 warms every path up (page-in, first prefix)
            for i, (name, path) in enumerate(paths.items()):
                messages = build_messages("math", QUESTION.format(f"{run}.{i}"))
                result = _timed(path(messages))
                if run >= 0:
                    rows.setdefault(name, []).append(result)
    finally:
        agent.should_exit = True
        server.terminate()
        server.wait(30)

    prompt = len(model.prompt_tokens(build_messages("math", QUESTION.format("0.0"))))
    print(f"model: {os.path.basename(settings.model_path)}  threads: {args.threads}  prompt: {prompt} "
          f"tokens  max_tokens: {args.max_tokens}  runs: {args.runs} (medians)")
    print(f"{'path':<30}{'TTFT ms':>10}{'tokens/s':>10}{'pieces':>8}")
    for name, results in rows.items():
        ttft = statistics.median(r[0] for r in results) * 1000
        rate = statistics.median(r[1] for r in results)
        n = statistics.median(r[2] for r in results)
        print(f"{name:<30}{ttft:>10.0f}{rate:>10.1f}{n:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
