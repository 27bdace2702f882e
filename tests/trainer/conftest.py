"""Trainer test helpers: small configs on the tiny random model, a scripted rollout engine.

The scripted engine is a test double for unit tests of the loop's logic; integration tests use the
real transformers engine.
"""

from __future__ import annotations

import types

import pytest
import torch

from trainer.config import load_config
from trainer.engines.base import truncate_response

HELP = "<think>\nStep 1: This looks hard.\nI need external assistance."
WRONG = "<think>\nStep 1: Guess.\n</think>\n<answer>Final answer: \\boxed{-12345}</answer>"


class ScriptedEngine:
    """A rollout engine that answers every prompt with the scripted texts, in order (cycled).

    The texts are tokenised with the real tokenizer and cut like real generations, so the trainer
    still runs the real model's forward/backward on them.
    """

    def __init__(self, texts: list[str], sample: bool = False):
        self.texts = texts
        self.sample = sample  # draw each text with torch's RNG (exercises RNG state on resume)

    def __call__(self, model, tokenizer):  # used as engine_factory(model, tokenizer)
        self.tokenizer = tokenizer
        self.eos = {tokenizer.eos_token_id}
        return self

    def generate(self, prompts, n, max_new_tokens, temperature):
        out = []
        for _ in prompts:
            group = []
            for i in range(n):
                k = int(torch.randint(len(self.texts), ())) if self.sample else i % len(self.texts)
                ids = self.tokenizer(self.texts[k], add_special_tokens=False).input_ids
                ids = ids[:max_new_tokens] + [self.tokenizer.eos_token_id]
                group.append(truncate_response(ids, self.tokenizer, self.eos))
            out.append(group)
        return out


@pytest.fixture
def tiny_cfg():
    """A tiny-model config; extra `--set` style overrides as arguments."""

    def make(*overrides: str):
        base = [
            'model.name_or_path="tiny-random"', "model.threads=1", "model.lora_r=4", "model.lora_alpha=8",
            "train.G=4", "train.batch_prompts=2", "train.max_new_tokens=48", "train.eval_n=2",
            "train.lr=0.01", "train.eta_lambda=0.5", "train.train_pool=16", "train.eval_at_start=false",
            'phases=[{tasks=["math"], steps=2, tau=0.2}]',
        ]
        return load_config(None, [*base, *overrides])

    return make


@pytest.fixture
def scripted():
    """HELP / WRONG texts and the ScriptedEngine class."""
    return types.SimpleNamespace(HELP=HELP, WRONG=WRONG, ScriptedEngine=ScriptedEngine)
