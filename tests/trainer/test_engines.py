"""Rollout engines: the llama.cpp engine hands the trainer the same kind of rollouts as the torch one.

Pure tests of the mismatch formulas first (hand-computed); then, with the real SmolLM2 GGUF, the
real llama.cpp sampler and the real float32 torch policy (integration): both engines' rollouts go
through the trainer's own reward path (`collect`) and update (`policy_update`) with the same masks,
the exported LoRA really is the one sampled from (KL to the torch policy small with it, large
without it), and a seed fixes the samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dagrpo.errors import UserError
from trainer.batch import build_batch
from trainer.config import load_config
from trainer import mismatch
from trainer.engines.base import Rollout, truncate_response


def test_mean_kl_k3_hand_computed():
    # log rho = log pi - log q = [0, log 2] on the mask; k3 = rho - 1 - log rho = [0, 1 - log 2]
    q = torch.tensor([[0.0, -1.0, -2.0]])
    pi = torch.tensor([[9.0, -1.0, -2.0 + math.log(2)]])
    mask = torch.tensor([[False, True, True]])
    assert mismatch.mean_kl(q, pi, mask) == pytest.approx((1 - math.log(2)) / 2)
    assert mismatch.mean_kl(q, pi, torch.zeros_like(mask)) == 0.0


def test_truncated_is_caps_the_ratio():
    old = torch.tensor([[0.0, math.log(0.5), math.log(8.0)]])
    q = torch.zeros(1, 3)
    assert mismatch.truncated_is(old, q, cap=2.0)[0].tolist() == pytest.approx([1.0, 0.5, 2.0])


def test_sampler_logp_lands_on_the_mask():
    ids, attn, mask = build_batch([[7, 8, 9], [7, 8, 9]], [[1, 2], [3]], pad_id=0)

    class R:  # only the field the function reads
        def __init__(self, lp):
            self.logprobs = lp

    q = mismatch.sampler_logp([[R((-0.5, -1.5)), R((-2.0,))]], mask)
    assert q.tolist() == [[0.0, 0.0, -0.5, -1.5], [0.0, 0.0, -2.0, 0.0]]
    assert mismatch.sampler_logp([[Rollout([1], "a", "eos")]], mask[:1]) is None


def test_config_refuses_checkpointing_with_a_shared_prompt():
    phases = 'phases=[{tasks=["math"], steps=1, tau=0.3}]'
    with pytest.raises(UserError, match="train.grad_checkpointing"):
        load_config(None, ["train.grad_checkpointing=true", phases])
    load_config(None, ["train.grad_checkpointing=true", "train.share_prompt=false", phases])
    with pytest.raises(UserError, match="train.engine"):
        load_config(None, ['train.engine="vllm"', phases])


# ---- real model, real llama.cpp ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from trainer.context import setup

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'train.engine="llamacpp"', "train.engine_threads=1", "train.G=2",
        "train.batch_prompts=2", "train.max_new_tokens=10", 'phases=[{tasks=["math"], steps=1, tau=0.3}]',
    ])
    ctx = setup(cfg, tmp_path_factory.mktemp("run"), resume=False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a LoRA far from zero, so sampling without it is measurably different
        for n, p in ctx.model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    yield ctx
    ctx.engine.close()


@pytest.fixture(scope="module")
def examples(ctx):
    from collab.tasks import get_task

    exs = get_task("math").examples("train", n=2, seed=0)
    return exs, [ctx.prompt_ids(ex) for ex in exs]


def _check_rollouts(ctx, rollouts, n_prompts: int, G: int, max_new: int):
    assert len(rollouts) == n_prompts and all(len(g) == G for g in rollouts)
    eos = ctx.engine.eos_ids if hasattr(ctx.engine, "eos_ids") else {ctx.tokenizer.eos_token_id}
    for r in (r for g in rollouts for r in g):
        again = truncate_response(r.token_ids, ctx.tokenizer, eos)  # the cut is the torch engine's rule
        assert (again.token_ids, again.text, again.stop) == (r.token_ids, r.text, r.stop)
        assert 1 <= len(r.token_ids) <= max_new
        assert r.stop != "length" or len(r.token_ids) == max_new


@pytest.mark.slow
@pytest.mark.integration
def test_both_engines_go_through_the_same_reward_path_and_update(ctx, examples):
    from trainer.engines.torch_engine import HFEngine
    from trainer.step import collect, policy_update

    exs, prompts = examples
    llama = ctx.engine
    for engine in (llama, HFEngine(ctx.model, ctx.tokenizer)):
        ctx.engine = engine
        rollouts = engine.generate(prompts, 2, 10, 1.0)
        _check_rollouts(ctx, rollouts, 2, 2, 10)
        scored, _, _ = collect(ctx, exs, rollouts, key=f"test/{type(engine).__name__}")
        assert [len(g) for g in scored] == [2, 2]
        _, attn, mask = build_batch([p for p in prompts for _ in range(2)],
                                    [r.token_ids for g in rollouts for r in g], ctx.tokenizer.pad_token_id)
        assert mask.sum(1).tolist() == [len(r.token_ids) for g in rollouts for r in g]
        before = [p.detach().clone() for p in ctx.model.parameters() if p.requires_grad]
        loss, grad_norm, kl = policy_update(ctx, prompts, rollouts, np.array([[1.0, -1.0], [0.5, -0.5]]))
        assert grad_norm > 0 and math.isfinite(loss)
        assert any(not torch.equal(a, b) for a, b in zip(before, (p for p in ctx.model.parameters() if p.requires_grad)))
        if engine is llama:
            assert all(len(r.logprobs) == len(r.token_ids) for g in rollouts for r in g)
            assert kl is not None and 0 <= kl < 0.05, kl  # the exported LoRA is what was sampled from
        else:
            assert kl is None
    ctx.engine = llama


@pytest.mark.slow
@pytest.mark.integration
def test_sampling_without_the_adapter_is_far_from_the_policy_and_seeds_repeat(ctx, examples):
    from trainer import lean

    _, prompts = examples
    engine = ctx.engine

    def kl_of(rollouts) -> float:
        ids, attn, mask = build_batch([p for p in prompts for _ in range(2)],
                                      [r.token_ids for g in rollouts for r in g], ctx.tokenizer.pad_token_id)
        with torch.no_grad():
            pi = lean.token_logprobs(ctx.model, ids, attn, mask)
        return mismatch.mean_kl(mismatch.sampler_logp(rollouts, mask), pi, mask)

    torch.manual_seed(3)
    synced = engine.generate(prompts, 2, 10, 1.0)
    torch.manual_seed(3)
    assert engine.generate(prompts, 2, 10, 1.0) == synced  # seeded: the same samples again
    engine.sampler.set_adapter(None)  # the quantized base alone; generate() swaps the LoRA back in
    raw = engine.sampler.sample(prompts, 2, 10, 1.0, 12345, engine.eos_ids)
    base = [[engine._rollout(ids, lp) for ids, lp in g] for g in raw]
    kl_synced, kl_base = kl_of(synced), kl_of(base)
    assert kl_synced < 0.05 and kl_base > 3 * kl_synced, (kl_synced, kl_base)


def test_shared_prefix_len_hand_computed():
    from llama_runtime.llm import BatchSampler

    sys_ = list(range(100, 120))  # 20 shared tokens
    assert BatchSampler.shared_prefix_len([sys_ + [1, 2], sys_ + [3], sys_ + [1, 5]]) == 20
    assert BatchSampler.shared_prefix_len([sys_ + [1]]) == 0  # one prompt: nothing to share
    assert BatchSampler.shared_prefix_len([sys_, sys_]) == 19  # each keeps its last token
    assert BatchSampler.shared_prefix_len([sys_[:10] + [1], sys_[:10] + [2]]) == 0  # below the minimum


@pytest.mark.slow
@pytest.mark.integration
def test_shared_prefix_prefill_gives_the_same_samples(ctx):
    """Prompts of one task share the system prompt: decoding it once gives the same greedy tokens
    and, up to llama.cpp's batch-layout noise (quantized kernels sum in a different order for other
    batch shapes: ~0.01-0.03 nats here), the same log-probs as decoding every prompt whole."""
    from collab.tasks import get_task
    from llama_runtime.llm import BatchSampler

    prompts = [ctx.prompt_ids(ex) for ex in get_task("math").examples("test", n=4, seed=3)]
    sampler = ctx.engine.sampler
    assert BatchSampler.shared_prefix_len(prompts) > 100  # the system prompt
    eos = ctx.engine.eos_ids
    # One greedy token per prompt: it is read from the logits at the prompt's last position, the
    # position whose KV the shared prefill changes; longer samples could part at a near-tie.
    shared = sampler.sample(prompts, 1, 1, 0.0, 0, eos)
    old = BatchSampler.MIN_SHARED_PREFIX
    BatchSampler.MIN_SHARED_PREFIX = 10**9  # every prompt decoded whole
    try:
        whole = sampler.sample(prompts, 1, 1, 0.0, 0, eos)
    finally:
        BatchSampler.MIN_SHARED_PREFIX = old
    for [(ta, la)], [(tb, lb)] in zip(shared, whole):
        assert ta == tb
        assert abs(la[0] - lb[0]) < 0.1
