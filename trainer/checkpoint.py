"""Run directory I/O: atomic writes, the resumable state (adapter + optimizer + state.json).

state.json holds lambda, the step counters, the completed evaluations and every RNG state
(python, numpy global, the data sampler, torch CPU and CUDA), so a resumed run draws the same
prompts and samples as an uninterrupted one. It is written last: it always names a complete
adapter/optimizer pair. torch is imported where it is used: the JSONL helpers serve torch-free
readers too (trainer/plots.py for the simulator).
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rewrite_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def _tensor_b64(t) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _b64_tensor(s: str):
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def rng_state(data_rng: np.random.Generator) -> dict:
    import torch

    version, internal, gauss = random.getstate()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [list(x) if isinstance(x, np.ndarray) else x for x in _np_global_state()],
        "data": data_rng.bit_generator.state,
        "torch": _tensor_b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_tensor_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def _np_global_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_rng_state(state: dict, data_rng: np.random.Generator) -> None:
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    data_rng.bit_generator.state = state["data"]
    torch.set_rng_state(_b64_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_b64_tensor(s) for s in state["cuda"]])


def save_checkpoint(out: Path, model, optimizer, state: dict) -> None:
    """adapter/ (peft layout), optimizer.pt, then state.json; each replaced atomically."""
    import torch

    tmp = out / "adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    from trainer.models import save_trained_adapter

    save_trained_adapter(model, tmp)
    old = out / "adapter.old"
    shutil.rmtree(old, ignore_errors=True)
    if (out / "adapter").exists():
        os.replace(out / "adapter", old)
    os.replace(tmp, out / "adapter")
    shutil.rmtree(old, ignore_errors=True)
    torch.save(optimizer.state_dict(), out / "optimizer.pt.tmp")
    os.replace(out / "optimizer.pt.tmp", out / "optimizer.pt")
    atomic_write_text(out / "state.json", json.dumps(state))


def load_state(out: Path) -> dict:
    path = out / "state.json"
    if not path.is_file():
        from dagrpo.errors import UserError

        raise UserError(f"nothing to resume: {path} does not exist")
    return json.loads(path.read_text())
