"""Random peft LoRA adapters for SmolLM2-135M, written with numpy (no torch needed).

The same files load in peft (`PeftModel.from_pretrained`) and, exported, in llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

# SmolLM2-135M: hidden 576, 9 heads / 3 kv heads of 64, MLP 1536, 30 layers
SHAPES = {  # module -> (in, out)
    "self_attn.q_proj": (576, 576), "self_attn.k_proj": (576, 192),
    "self_attn.v_proj": (576, 192), "self_attn.o_proj": (576, 576),
    "mlp.gate_proj": (576, 1536), "mlp.up_proj": (576, 1536), "mlp.down_proj": (1536, 576),
}
N_LAYER = 30


def write_random_adapter(path: Path, *, seed: int, r: int = 8, alpha: float = 16.0,
                         b_std: float = 0.01) -> Path:
    """A peft adapter directory whose B is non-zero noise (so the adapter changes the logits)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(N_LAYER):
        for module, (n_in, n_out) in SHAPES.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            a = rng.standard_normal((r, n_in)) / np.sqrt(n_in)  # (r, in), like peft's init scale
            tensors[f"{key}.lora_A.weight"] = a.astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((n_out, r)) * b_std).astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
              "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": None,
              "target_modules": sorted(m.split(".")[1] for m in SHAPES)}
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path
