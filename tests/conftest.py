"""Fixtures and hooks shared by every test area (keep small; areas add their own conftest.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# No test may reach a model or data hub: transformers/huggingface_hub fail instead of downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests cleanly without CUDA (torch is imported only if such tests were collected)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to it promptly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def help_run(tmp_path_factory):
    """A run directory whose adapter (SmolLM2, LoRA) is a short format warm-up with half of its
    targets help requests: a help-trained adapter for the help-knob tests (about a minute)."""
    from trainer.commands import demo_config
    from trainer.train import train

    out = tmp_path_factory.mktemp("help-run")
    cfg = demo_config(["warmup.steps=8", "warmup.help_share=0.5", "train.eval_at_start=false"])
    train(cfg, out, max_steps=0, progress=False)
    return out
