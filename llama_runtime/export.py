"""peft LoRA adapter -> GGUF LoRA adapter that llama.cpp loads on top of the quantized base.

Reads `adapter_config.json` + `adapter_model.safetensors` with the safetensors numpy API and writes
GGUF with the `gguf` package: no torch, so a device can export what it (or a server) trained.

Layout (llama.cpp's `llama_adapter_lora_init` contract):
- tensor names `blk.{i}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a|b`;
- arrays in torch layout, A: (r, in), B: (out, r) -- gguf-py reverses the axes for ggml;
- metadata `general.architecture` (the base's), `general.type=adapter`, `adapter.type=lora`,
  `adapter.lora.alpha` (a float: a missing alpha silently means "scale 1", not alpha/r).

The trap: the GGUF conversion of a llama-architecture model permutes the rows of `attn_q` (with
n_head) and `attn_k` (with n_head_kv) for llama.cpp's rope layout, and transformers un-permutes them
when it loads a GGUF. A LoRA trained in transformers therefore lives in the un-permuted basis: the
rows of B (its output dimension) for q and k must get the same permutation; A is untouched.
Exporting without it still loads and mostly agrees on the top-1 token -- only the logits show it.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

from dagrpo.errors import UserError

# peft module name -> llama.cpp tensor name (llama-family architectures)
MODULE_TO_GGUF: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
# architecture -> whether its HF->GGUF conversion permutes q/k rows (convert_hf_to_gguf.py:
# LlamaModel permutes; Qwen2 does not). Only "llama" is verified by tests/edge_agent.
ROW_PERMUTED_ARCHS: dict[str, bool] = {"llama": True, "qwen2": False}

# base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight
_KEY = re.compile(r"\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$")


@dataclass(frozen=True)
class BaseShape:
    """What the export needs to know about the base GGUF the adapter will run on."""

    architecture: str
    n_head: int
    n_head_kv: int
    n_layer: int


def read_base_shape(base_gguf: str | Path) -> BaseShape:
    """Architecture and head counts from the base GGUF's metadata.

    Scans only the key/value header and stops once it has what it needs: gguf-py's GGUFReader
    parses the whole 49k-entry tokenizer first (~10 s on this machine), too slow for a hot swap.
    """
    wanted = {"general.architecture"}
    found: dict[str, object] = {}
    with open(base_gguf, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{base_gguf} is not a GGUF file")
        _version, _n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
        for _ in range(n_kv):
            key = _read_str(f)
            value = _read_value(f, struct.unpack("<I", f.read(4))[0])
            if key in wanted:
                found[key] = value
            if key == "general.architecture":
                arch = str(value)
                wanted |= {f"{arch}.{k}" for k in _SHAPE_KEYS}
            if wanted <= found.keys():
                break
    missing = sorted(wanted - found.keys())
    if missing:
        raise UserError(f"{base_gguf}: no {missing} in the GGUF metadata")
    arch = str(found["general.architecture"])
    n_head, n_head_kv, n_layer = (int(found[f"{arch}.{k}"]) for k in _SHAPE_KEYS)
    return BaseShape(arch, n_head, n_head_kv, n_layer)


_SHAPE_KEYS = ("attention.head_count", "attention.head_count_kv", "block_count")
# GGUF value types -> struct format of a scalar (8 = string, 9 = array: handled apart)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


def _read_str(f) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8", "replace")


def _read_value(f, vtype: int):
    if vtype == 8:
        return _read_str(f)
    if vtype == 9:  # array: element type, count, elements (skipped: no wanted key is an array)
        etype, count = struct.unpack("<IQ", f.read(12))
        if etype in _SCALAR:
            f.seek(count * struct.calcsize(_SCALAR[etype]), 1)
        else:
            for _ in range(count):
                _read_value(f, etype)
        return None
    fmt = _SCALAR[vtype]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's `LlamaModel.permute` on the rows of w (out, ...).

    Per head, rows [r0 r1 ... | r_{h/2} ...] (two rope halves) become interleaved pairs.
    """
    out = w.shape[0]
    if out % (2 * n_head):
        raise ValueError(f"{out} rows do not split into {n_head} heads of two rope halves")
    return (w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def effective_alpha(config: dict) -> float:
    """The alpha that makes llama.cpp's scale alpha/r equal peft's scale (alpha/r or alpha/sqrt(r))."""
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha * math.sqrt(r) if config.get("use_rslora") else alpha


def _check_config(config: dict) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"only LoRA adapters export to GGUF, got peft_type={config['peft_type']!r}")
    for key in ("use_dora",):
        if config.get(key):
            raise UserError(f"adapter_config.json: {key}=true has no llama.cpp equivalent")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise UserError(f"adapter_config.json: a non-empty {key} is not supported by the export")


def lora_tensors(weights: dict[str, np.ndarray], base: BaseShape,
                 permute_qk: bool = True) -> dict[str, np.ndarray]:
    """peft state dict -> {gguf tensor name: float32 array in torch layout}."""
    out: dict[str, np.ndarray] = {}
    for key, w in weights.items():
        m = _KEY.search(key)
        if m is None or m.group(2) not in MODULE_TO_GGUF:
            raise UserError(f"adapter tensor {key!r} does not map to a llama.cpp LoRA tensor")
        layer, module, ab = int(m.group(1)), m.group(2), m.group(3)
        if layer >= base.n_layer:
            raise UserError(f"adapter tensor {key!r}: the base has only {base.n_layer} layers")
        w = np.asarray(w, dtype=np.float32)
        if permute_qk and ab == "B" and module in ("q_proj", "k_proj"):
            w = permute_rows(w, base.n_head if module == "q_proj" else base.n_head_kv)
        out[f"blk.{layer}.{MODULE_TO_GGUF[module]}.weight.lora_{ab.lower()}"] = np.ascontiguousarray(w)
    return out


def find_adapter_dir(path: str | Path) -> Path:
    """A peft adapter directory, or a training run directory holding one in `adapter/`."""
    path = Path(path)
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            if not (candidate / "adapter_model.safetensors").is_file():
                raise UserError(f"{candidate}: adapter_config.json without adapter_model.safetensors")
            return candidate
    raise UserError(f"{path}: neither a peft adapter directory nor a run directory with adapter/")


def export_adapter(adapter: str | Path, base_gguf: str | Path, out: str | Path,
                   permute_qk: bool = True) -> Path:
    """Write the GGUF LoRA for the peft adapter at `adapter` (dir or run dir); returns `out`.

    `permute_qk=False` exists only so a test can show the permutation matters.
    """
    adapter_dir = find_adapter_dir(adapter)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    _check_config(config)
    base = read_base_shape(base_gguf)
    if base.architecture not in ROW_PERMUTED_ARCHS:
        raise UserError(f"base architecture {base.architecture!r} is not supported by the export "
                        f"(supported: {sorted(ROW_PERMUTED_ARCHS)})")
    tensors = lora_tensors(load_file(str(adapter_dir / "adapter_model.safetensors")), base,
                           permute_qk=permute_qk and ROW_PERMUTED_ARCHS[base.architecture])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, effective_alpha(config))
    for name, array in sorted(tensors.items()):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)  # atomic: a watcher or a hot swap never sees a half-written file
    return out
