"""The edge agent the edge benchmarks measure: the SmolLM2 model and a real uvicorn server on loopback."""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time

import uvicorn

from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings
from llama_runtime.llm import LocalModel


def parse_args(doc: str, runs: int) -> argparse.Namespace:
    """The edge benchmarks' options: --runs (default `runs`), --max-tokens, --threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(threads: int) -> tuple[EdgeSettings, LocalModel, uvicorn.Server]:
    """The agent (no cloud, a throwaway usage outbox) serving on a free loopback port, started; the
    model object is returned too, so a benchmark can time raw llama-cpp-python on the same weights."""
    settings = EdgeSettings(port=free_port(), threads=threads, gateway="",
                            outbox_path=os.path.join(tempfile.mkdtemp(), "usage.sqlite"))
    model = LocalModel(settings.model_path, n_ctx=settings.n_ctx, threads=threads)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, model=model), host="127.0.0.1",
                                           port=settings.port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return settings, model, server
