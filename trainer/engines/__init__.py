"""Rollout engines selectable by `train.engine`: "torch" (the reference, torch_engine.py) or "llamacpp".

`make_engine_factory` returns a callable (model, tokenizer) -> engine, the shape `trainer.context.setup`
takes; the llama.cpp engine is imported only when selected (it needs llama-cpp-python).
"""

from __future__ import annotations

from functools import partial


def make_engine_factory(model_cfg, train_cfg):
    if train_cfg.engine == "torch":
        from trainer.engines.torch_engine import HFEngine

        return HFEngine
    from trainer.engines.llamacpp import LlamaCppEngine, base_gguf

    return partial(LlamaCppEngine, gguf_path=base_gguf(model_cfg, train_cfg), threads=train_cfg.engine_threads,
                   n_seq_max=train_cfg.engine_n_seq_max, n_ctx=train_cfg.engine_n_ctx)


def greedy_texts(engine, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 16,
                 help_bias: float | None = None) -> list[str]:
    """One greedy response per prompt (token ids), generated `batch_size` prompts at a time (with
    the help knob at `help_bias` where given: asks iff score + bias > 0)."""
    texts = []
    knob = {} if help_bias is None else {"help_bias": help_bias}
    for i in range(0, len(prompts), batch_size):
        out = engine.generate(prompts[i:i + batch_size], 1, max_new_tokens, 0.0, **knob)
        texts += [group[0].text for group in out]
    return texts
