"""llama.cpp + exported GGUF LoRA == torch + peft on the same weights, up to quantization noise.

Torch runs SmolLM2 dequantized from the same Q4_1 GGUF (float32), loaded exactly as the trainer
loads it (`trainer.models.load_policy`, which caches the dequantized copy); llama.cpp runs it
quantized.
Their base-vs-base gap is the noise floor; the adapter gap must sit at that floor, and an export
without the q/k row permutation must be measurably worse (it still loads and often agrees on top-1).
"""

import os

import numpy as np
import pytest

from llama_runtime.export import export_adapter
from edge_agent.settings import default_model_path
from edge_adapters import write_random_adapter

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Short chat-formatted prompts (~20 tokens): several positions exercise rope (where a missing q/k
# permutation shows) while keeping 9 llama.cpp and 6 torch forwards cheap.
QUESTIONS = ["What is 17 * 23?", "Name the largest planet in the solar system.",
             "Write a Python function that reverses a string."]


def _gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |logit difference|, top-1 agreement) over prompts; a, b: (n_prompts, n_vocab)."""
    return float(np.abs(a - b).max()), float(np.mean(a.argmax(-1) == b.argmax(-1)))


@pytest.fixture(scope="module")
def logits(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from trainer.config import ModelConfig
    from trainer.models import load_base, load_policy

    from llama_runtime.llm import LocalModel

    base = default_model_path()
    tmp = tmp_path_factory.mktemp("equiv")
    adapter_dir = write_random_adapter(tmp / "adapter", seed=1, b_std=0.08)
    permuted = export_adapter(adapter_dir, base, tmp / "permuted.gguf")
    unpermuted = export_adapter(adapter_dir, base, tmp / "unpermuted.gguf", permute_qk=False)

    llm = LocalModel(base, n_ctx=1024, threads=1)
    prompts = [llm.prompt_tokens([{"role": "user", "content": q}]) for q in QUESTIONS]

    def cpp(adapter):
        llm.set_adapter(adapter)
        return np.stack([llm.next_token_logits(p) for p in prompts])

    out = {"cpp_base": cpp(None), "cpp_lora": cpp(str(permuted)), "cpp_unperm": cpp(str(unpermuted))}
    del llm

    torch.set_num_threads(2)
    cfg = ModelConfig(name_or_path="smollm2", device="cpu", dtype="float32")

    def torch_logits(m):
        with torch.no_grad():
            return np.stack([m(torch.tensor([p])).logits[0, -1].numpy() for p in prompts])

    out["torch_base"] = torch_logits(load_base(cfg)[0].eval())
    out["torch_lora"] = torch_logits(load_policy(cfg, adapter=adapter_dir)[0].eval())
    return out


def test_adapter_matches_peft_at_the_quantization_noise_floor(logits):
    floor, floor_top1 = _gap(logits["cpp_base"], logits["torch_base"])
    gap, top1 = _gap(logits["cpp_lora"], logits["torch_lora"])
    effect, _ = _gap(logits["torch_lora"], logits["torch_base"])
    unperm, unperm_top1 = _gap(logits["cpp_unperm"], logits["torch_lora"])
    print(f"\nbase vs base (noise floor): max|dlogit|={floor:.3f} top1={floor_top1:.2f}"
          f"\nllama.cpp+LoRA vs torch+peft: max|dlogit|={gap:.3f} top1={top1:.2f}"
          f"\nun-permuted export vs torch+peft: max|dlogit|={unperm:.3f} top1={unperm_top1:.2f}"
          f"\nadapter effect (torch+peft vs torch base): max|dlogit|={effect:.3f}")
    assert effect > 5 * floor, "the adapter must change the logits well beyond the noise"
    assert gap < 2.0 * floor + 0.1
    assert top1 == 1.0
    assert unperm > 2 * gap, "without the q/k permutation the export must be measurably worse"
