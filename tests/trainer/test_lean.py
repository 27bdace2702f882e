"""The lean pass (trainer/lean.py) equals the plain pass: same loss, same LoRA gradients (1e-5 rel).

Tiny random model by default; SmolLM2 (the real float32 policy) marked slow + integration. LoRA B
is randomised so every LoRA tensor (A and B) has a nonzero gradient to compare.
"""

from __future__ import annotations

import pytest
import torch

from collab.tokens import common_prefix_len
from trainer import lean
from trainer.batch import build_batch
from trainer.config import ModelConfig
from trainer.loss import pg_loss, token_logprobs
from trainer.models import load_policy

REL = 1e-5


def test_prompt_lengths_and_groups_hand_computed():
    prompts = [[5, 6, 7], [5, 6, 7], [5, 6, 8], [9]]
    comps = [[1, 2], [3], [4, 4, 4], [2]]
    ids, attn, mask = build_batch(prompts, comps, pad_id=0)
    plens = lean.prompt_lengths(attn, mask)
    assert plens == [3, 3, 3, 1]
    assert lean.prompt_groups(ids, plens) == [(0, 2), (2, 3), (3, 4)]


def _policy(name: str):
    model, tok = load_policy(ModelConfig(name_or_path=name, dtype="float32", device="cpu"), seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.train()
    return model, tok


def _batch(tok, n_prompts: int, G: int, seed: int):
    """Real chat prompts of different lengths, G random completions each of different lengths."""
    gen = torch.Generator().manual_seed(seed)
    questions = ["What is 2+3?", "Name a planet that has rings and explain why in one short sentence."]
    prompts, comps = [], []
    for b in range(n_prompts):
        p = tok.apply_chat_template([{"role": "user", "content": questions[b % 2]}], add_generation_prompt=True,
                                    tokenize=True)
        p = list(p["input_ids"] if hasattr(p, "keys") else p)
        for g in range(G):
            prompts.append(p)
            comps.append(torch.randint(0, len(tok), (2 + 3 * g + b,), generator=gen).tolist())
    ids, attn, mask = build_batch(prompts, comps, tok.pad_token_id)
    adv = torch.randn(len(comps), generator=gen)
    return ids, attn, mask, adv, G, n_prompts


def _loss_and_grads(model, logp_fn, batch):
    ids, attn, mask, adv, G, B = batch
    model.zero_grad(set_to_none=True)
    loss = pg_loss(logp_fn(ids, attn, mask), mask, adv, group_size=G, n_prompts=B)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def _plain(model):
    return lambda ids, attn, mask: token_logprobs(model(input_ids=ids, attention_mask=attn).logits, ids)


def _assert_same(ref, got):
    (loss_a, grads_a), (loss_b, grads_b) = ref, got
    assert loss_b == pytest.approx(loss_a, rel=REL)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for n in grads_a:
        scale = grads_a[n].norm().item()
        assert scale > 0, f"{n}: zero reference gradient tests nothing"
        assert (grads_b[n] - grads_a[n]).norm().item() <= REL * scale, n


@pytest.fixture(scope="module")
def tiny():
    return _policy("tiny-random")


@pytest.mark.parametrize("share", [True, False])
def test_lean_equals_plain_on_the_tiny_model(tiny, share):
    model, tok = tiny
    batch = _batch(tok, n_prompts=2, G=3, seed=0)
    ref = _loss_and_grads(model, _plain(model), batch)
    got = _loss_and_grads(model, lambda i, a, m: lean.token_logprobs(model, i, a, m, share_prompt=share), batch)
    _assert_same(ref, got)


def test_lean_logprobs_are_zero_off_the_mask_and_equal_on_it(tiny):
    model, tok = tiny
    ids, attn, mask, *_ = _batch(tok, n_prompts=2, G=2, seed=3)
    with torch.no_grad():
        plain = _plain(model)(ids, attn, mask)
        got = lean.token_logprobs(model, ids, attn, mask)
    assert torch.all(got[~mask] == 0)
    assert torch.allclose(got[mask], plain[mask], rtol=1e-5, atol=1e-5)


def test_grad_checkpointing_keeps_the_gradients(tiny):
    model, tok = _policy("tiny-random")  # a fresh copy: checkpointing is a model-wide switch
    batch = _batch(tok, n_prompts=2, G=2, seed=4)
    ref = _loss_and_grads(model, _plain(model), batch)
    lean.enable_grad_checkpointing(model)
    got = _loss_and_grads(model, lambda i, a, m: lean.token_logprobs(model, i, a, m, share_prompt=False), batch)
    _assert_same(ref, got)


@pytest.mark.slow
@pytest.mark.integration
def test_lean_equals_plain_on_smollm2():
    model, tok = _policy("smollm2")
    batch = _batch(tok, n_prompts=2, G=2, seed=5)
    ref = _loss_and_grads(model, _plain(model), batch)
    got = _loss_and_grads(model, lambda i, a, m: lean.token_logprobs(model, i, a, m, share_prompt=True), batch)
    _assert_same(ref, got)


def test_common_prefix_len_hand_computed():
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2, 3, 5]]) == 2
    assert common_prefix_len([[1, 2], [1, 2]]) == 2
    assert common_prefix_len([[7], [8, 1]]) == 0


def test_shared_prefix_of_different_prompts_equals_plain_pass():
    """The warm-up's pass: rows with different prompts that share a prefix (the system prompt)."""
    model, tok = _policy("tiny-random")
    gen = torch.Generator().manual_seed(3)
    prompts = [[5, 6, 7, 8, 9], [5, 6, 7, 2], [5, 6, 7, 8, 3, 3]]
    comps = [torch.randint(0, len(tok), (k,), generator=gen).tolist() for k in (3, 6, 1)]
    ids, attn, mask = build_batch(prompts, comps, tok.pad_token_id)
    adv = torch.randn(len(comps), generator=gen)
    batch = (ids, attn, mask, adv, 3, 1)
    k = common_prefix_len(prompts)
    assert k == 3
    ref = _loss_and_grads(model, _plain(model), batch)
    got = _loss_and_grads(model, lambda i, a, m: lean.shared_prefix_logprobs(model, i, a, m, k), batch)
    _assert_same(ref, got)
    with pytest.raises(ValueError):
        lean.shared_prefix_logprobs(model, ids, attn, mask, 0)
