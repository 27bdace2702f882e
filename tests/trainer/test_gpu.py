"""One training step on CUDA (bf16): skipped cleanly without a GPU."""

import pytest
import torch

from trainer.train import train


@pytest.mark.gpu
def test_one_step_on_cuda(tiny_cfg, tmp_path, scripted):
    cfg = tiny_cfg('model.device="cuda"', "phases.0.steps=1", "phases.0.tau=0.1")
    ctx = train(cfg, tmp_path, engine_factory=scripted.ScriptedEngine([scripted.HELP, scripted.WRONG]),
                progress=False)
    param = next(p for n, p in ctx.model.named_parameters() if "lora_B" in n)
    base = next(p for n, p in ctx.model.named_parameters() if "lora_" not in n)
    assert param.device.type == "cuda" and base.dtype == torch.bfloat16  # peft may keep LoRA in fp32
    assert param.abs().sum().item() > 0  # lora_B starts at zero: the step moved it
    assert ctx.lam > cfg.train.lambda_init
