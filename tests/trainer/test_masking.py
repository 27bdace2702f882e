"""Only local tokens carry gradient: cloud tokens, text after the trigger and padding do not.

Real (tiny, random) Llama forward passes through the trainer's own batch and loss functions.
"""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from collab.protocol import HELP_TRIGGER
from trainer.batch import build_batch
from trainer.loss import pg_loss, token_logprobs
from trainer.config import ModelConfig
from trainer.models import load_base
from trainer.engines.base import truncate_response

PAD = 0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=PAD)
    return LlamaForCausalLM(cfg).eval()


def _loss(model, prompts, completions, local_lens, adv):
    """Rows = prompt + completion; only the first `local_lens[i]` completion tokens are trained."""
    ids, attn, mask = build_batch(prompts, completions, PAD)
    for n, (p, k) in enumerate(zip(prompts, local_lens)):
        mask[n, len(p) - 1 + k:] = False  # a composed forward pass: the cloud suffix is masked out
    logp = token_logprobs(model(input_ids=ids, attention_mask=attn).logits, ids)
    return pg_loss(logp, mask, torch.tensor(adv), group_size=2, n_prompts=1).item()


def test_cloud_tokens_of_a_composed_response_do_not_change_the_loss(model):
    prompt, local = [5, 6, 7, 8], [11, 12, 13]
    base = _loss(model, [prompt, prompt], [local + [20, 21, 22], [14, 15]], [3, 2], [0.5, -0.5])
    other_cloud = _loss(model, [prompt, prompt], [local + [30, 31, 32], [14, 15]], [3, 2], [0.5, -0.5])
    assert base == pytest.approx(other_cloud, abs=1e-6)
    other_local = _loss(model, [prompt, prompt], [[11, 19, 13, 20, 21, 22], [14, 15]], [3, 2], [0.5, -0.5])
    assert abs(base - other_local) > 1e-4


def test_padding_does_not_change_the_loss(model):
    short = _loss(model, [[5, 6], [5, 6]], [[11, 12], [13, 14, 15, 16, 17]], [2, 5], [1.0, -1.0])
    ids, attn, mask = build_batch([[5, 6], [5, 6]], [[11, 12], [13, 14, 15, 16, 17]], PAD)
    ids[0, attn[0] == 0] = 33  # garbage where the padding was; attention still masks it
    logp = token_logprobs(model(input_ids=ids, attention_mask=attn).logits, ids)
    assert pg_loss(logp, mask, torch.tensor([1.0, -1.0]), group_size=2, n_prompts=1).item() == pytest.approx(short)


def test_text_after_the_trigger_is_discarded_and_trigger_tokens_kept():
    _, tokenizer = load_base(ModelConfig(name_or_path="tiny-random", threads=1))
    head = tokenizer("<think>\nStep 1: Hard.\n" + HELP_TRIGGER, add_special_tokens=False).input_ids
    a = truncate_response(head + tokenizer(" Anyway 42", add_special_tokens=False).input_ids, tokenizer, {2})
    b = truncate_response(head + tokenizer("\nStep 2: more", add_special_tokens=False).input_ids, tokenizer, {2})
    assert a.token_ids == b.token_ids and a.stop == b.stop == "trigger"
    assert a.text.endswith(HELP_TRIGGER) or HELP_TRIGGER in a.text
    assert len(a.token_ids) >= len(head) - 1  # the trigger's own tokens stay trained
    eos = truncate_response([tokenizer.eos_token_id, 100, 101], tokenizer, {tokenizer.eos_token_id})
    assert eos.token_ids == [tokenizer.eos_token_id] and eos.stop == "eos"  # EOS kept, the rest dropped
