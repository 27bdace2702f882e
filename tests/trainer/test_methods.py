"""The baselines' formulas against hand-computed numbers, and each method's defining rule.

Pure tests first (no torch model); the tiny-model tests at the end run the real trainer for one step
per method with scripted rollouts (tests/trainer/fakes.py) on the 2-layer random model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dagrpo.errors import UserError
from trainer.methods.fixed_reward import hierarchical_reward, no_cloud_reward
from trainer.methods.gapg_filter import budget_filter
from trainer.methods.grpo_norm import grpo_advantages
from trainer.methods.gvpo_weights import gvpo_weights
from trainer.methods.routing import calibrate_threshold, naive_offload, router_offload

# r (eq. 13) and c (eq. 14) of one group: local correct, help + cloud right, format violated,
# help + cloud wrong
R = [1.0, 1.0, -0.1, 0.0]
C = [0.0, 1.0, 0.0, 1.0]


def test_hierarchical_reward_freezes_the_assisted_value():
    assert hierarchical_reward(R, C, 0.2).tolist() == [1.0, 0.2, -0.1, 0.0]
    assert hierarchical_reward(R, C, 0.05).tolist() == [1.0, 0.05, -0.1, 0.0]


def test_no_cloud_reward_scores_the_trigger_as_an_unanswered_response():
    assert no_cloud_reward(R, C).tolist() == [1.0, -0.1, -0.1, -0.1]


def test_grpo_advantages_hand_computed():
    # [1,0,0,0]: mean 0.25, population std sqrt(3)/4 = 0.4330
    a = grpo_advantages([1.0, 0.0, 0.0, 0.0])
    assert a == pytest.approx([0.75 / 0.4331, -0.25 / 0.4331, -0.25 / 0.4331, -0.25 / 0.4331], rel=1e-3)
    assert grpo_advantages([[0.5, 0.5]]).tolist() == [[0.0, 0.0]]


def test_gvpo_weights_hand_computed():
    # r - mean r = [0.5, -0.5]; s - mean s = [1, -1]; beta 0.1 -> [0.4, -0.4]
    assert gvpo_weights([[1.0, 0.0]], [[3.0, 1.0]], 0.1) == pytest.approx(np.array([[0.4, -0.4]]))


def test_gvpo_weights_give_the_gradient_of_the_squared_loss():
    """grad of 1/2 sum_i [(R_i - mean R) - beta (s_i - mean s)]^2 = -beta sum_i w_i grad s_i."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64)
    theta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    rewards, beta = torch.tensor([1.0, 0.0, 0.2, -0.1], dtype=torch.float64), 0.3
    s = x @ theta  # a log-ratio linear in theta: grad s_i = x_i
    loss = 0.5 * (((rewards - rewards.mean()) - beta * (s - s.mean())) ** 2).sum()
    loss.backward()
    w = gvpo_weights(rewards.numpy(), s.detach().numpy(), beta)
    assert theta.grad.numpy() == pytest.approx(-beta * (w[:, None] * x.numpy()).sum(0))


def test_budget_filter_over_budget_drops_groups_that_reward_asking():
    adv = np.array([[0.5, -0.5], [-0.5, 0.5], [0.2, -0.2]])
    costs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    filtered, kept = budget_filter(adv, costs, ratio=0.5, tau=0.3)
    assert kept.tolist() == [False, True, True]
    assert filtered.tolist() == [[0.0, 0.0], [-0.5, 0.5], [0.2, -0.2]]


def test_budget_filter_under_budget_drops_groups_that_punish_asking():
    adv = np.array([[0.5, -0.5], [-0.5, 0.5]])
    costs = np.array([[1.0, 0.0], [1.0, 0.0]])
    _, kept = budget_filter(adv, costs, ratio=0.1, tau=0.3)
    assert kept.tolist() == [True, False]
    _, kept = budget_filter(adv, costs, ratio=0.3, tau=0.3)
    assert kept.tolist() == [True, True]


def test_naive_offload_rate_is_tau_within_sampling_error():
    ids = [f"math/test/{i}" for i in range(4000)]
    for tau in (0.1, 0.3, 0.7):
        rate = np.mean(naive_offload(ids, tau, seed=1))
        assert abs(rate - tau) < 4 * math.sqrt(tau * (1 - tau) / len(ids))
    assert naive_offload(ids[:50], 0.3, 1) == naive_offload(ids[:50], 0.3, 1)  # fixed per query
    assert naive_offload(ids[:50], 0.3, 1) != naive_offload(ids[:50], 0.3, 2)


def test_calibrated_threshold_offloads_tau_of_the_validation_scores():
    scores = np.linspace(0, 1, 20)
    for tau in (0.0, 0.3, 0.5, 1.0):
        thr = calibrate_threshold(scores, tau)
        assert sum(router_offload(scores, thr)) == round(tau * 20)
    assert router_offload([0.9, 0.1], calibrate_threshold([0.9, 0.1], 0.5)) == [True, False]


def test_logistic_router_learns_a_separable_rule_and_breaks_ties():
    from trainer.methods.router_classifier import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = (x[:, 0] > 0).astype(float)  # fails exactly when feature 0 is positive
    router = fit_logistic(x, y, l2=0.1)
    ids = [str(i) for i in range(80)]
    assert np.mean((router.scores(x, ids) > 0.5) == y) > 0.95
    assert not router.single_class
    const = fit_logistic(x, np.ones(80), l2=1.0)
    assert const.single_class
    s = const.scores(x, ids)
    assert len(set(s.tolist())) == 80  # hash tie-break: a calibrated share is still offloaded


# --------------------------------------------------------------------------------- method objects

def _cfg(method: str, **args):
    from trainer.config import TrainConfig

    cfg = TrainConfig(method=method)
    if args:
        cfg.method_args = args
    return cfg


def test_grpo_fixed_never_uses_lambda_and_needs_the_step():
    from trainer.methods import make_method

    m = make_method(_cfg("grpo_fixed"))
    assert m.updates_lambda is False
    with pytest.raises(RuntimeError, match="begin_step"):
        m.advantages(np.array([R]), np.array([C]), 0.5)
    m.begin_step(None, task="math", tau=0.3)
    a0 = m.advantages(np.array([R]), np.array([C]), 0.0)
    assert m.advantages(np.array([R]), np.array([C]), 7.0).tolist() == a0.tolist()
    assert a0 == pytest.approx(grpo_advantages([[1.0, 0.2, -0.1, 0.0]]))
    m.begin_step(None, task="code", tau=0.5)  # the code assistance reward is 0.05
    assert m.advantages(np.array([R]), np.array([C]), 0.0) == pytest.approx(grpo_advantages([[1.0, 0.05, -0.1, 0.0]]))


def test_method_args_are_validated_naming_the_key():
    from trainer.methods import make_method

    m = make_method(_cfg("grpo_fixed", assist_math=0.5))
    assert m.args.assist("math") == 0.5
    with pytest.raises(UserError, match="train.method_args.assist_mth"):
        make_method(_cfg("gapg", assist_mth=0.5))
    with pytest.raises(UserError, match="train.method_args.beta"):
        make_method(_cfg("gvpo", beta=-1))
    with pytest.raises(UserError, match="cloud_only"):
        make_method(_cfg("cloud_only"))


def test_gapg_applies_the_budget_rule():
    from trainer.methods import make_method

    m = make_method(_cfg("gapg"))
    rewards = np.array([[1.0, 0.0], [0.0, 1.0]])  # group 0: the help request (c=1) was right
    costs = np.array([[1.0, 0.0], [0.0, 0.0]])
    m.begin_step(None, task="science", tau=0.1)  # J = 0.25 > tau; science is QA: assist 0.4
    adv = m.advantages(rewards, costs, 0.5)
    assert adv.tolist() == [[0.0, 0.0], [-0.5, 0.5]]  # group 0 dropped
    m.begin_step(None, task="science", tau=0.5)  # J = 0.25 < tau: asking is encouraged, kept
    adv = m.advantages(rewards, costs, 0.5)
    assert adv == pytest.approx(np.array([[0.2, -0.2], [-0.5, 0.5]]))  # assist 0.4 vs 0, centred


def test_edge_family_trains_without_cloud_reward():
    from trainer.methods import make_method

    for name in ("edge_only", "naive_router", "router"):
        m = make_method(_cfg(name))
        assert m.name == name and m.updates_lambda is False
        adv = m.advantages(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]), 0.5)
        # the help request (cloud right, r = 1) scores -0.1 against the wrong answer's 0
        assert adv[0, 1] < 0 < adv[0, 0]


# ------------------------------------------------------------- defining rules on the tiny model

def _run(tiny_cfg, scripted, tmp_path, method: str, texts, *sets: str):
    from trainer.checkpoint import read_jsonl
    from trainer.train import train

    cfg = tiny_cfg(f'train.method="{method}"', "cloud.accuracy=1.0", *sets)  # no 3% cloud misses
    ctx = train(cfg, tmp_path / method, engine_factory=scripted.ScriptedEngine(texts), progress=False)
    return ctx, read_jsonl(tmp_path / method / "metrics.jsonl")


def _lora(ctx) -> list:
    return [p.detach().clone() for n, p in ctx.model.named_parameters() if "lora_B" in n]


def test_tiny_grpo_fixed_keeps_lambda_fixed_and_learns(tiny_cfg, scripted, tmp_path):
    ctx, metrics = _run(tiny_cfg, scripted, tmp_path, "grpo_fixed", [scripted.HELP, scripted.WRONG],
                        "phases.0.steps=1")
    assert [m["lambda_next"] for m in metrics] == [0.5]  # never updated, though ratio 0.5 > tau 0.2
    assert all(m["collab_ratio"] == 0.5 for m in metrics)
    assert all(m["adv_abs_mean"] > 0 for m in metrics)
    assert any(float(b.abs().sum()) > 0 for b in _lora(ctx))


def test_tiny_gapg_filters_every_prompt_over_budget(tiny_cfg, scripted, tmp_path):
    # ratio 0.5 > tau 0.2 and the help requests earn the assistance reward: every group pushes
    # toward offloading, so the budget rule drops all of them and the step changes nothing.
    ctx, metrics = _run(tiny_cfg, scripted, tmp_path, "gapg", [scripted.HELP, scripted.WRONG], "phases.0.steps=1")
    assert all(m["adv_abs_mean"] == 0 for m in metrics)
    assert all(float(b.abs().sum()) == 0 for b in _lora(ctx))
    ctx, metrics = _run(tiny_cfg, scripted, tmp_path / "under", "gapg", [scripted.HELP, scripted.WRONG],
                        "phases.0.tau=0.9", "phases.0.steps=1")  # under budget: the same groups are kept
    assert all(m["adv_abs_mean"] > 0 for m in metrics)


def test_tiny_edge_only_gives_the_trigger_nothing(tiny_cfg, scripted, tmp_path):
    # HELP (answered right by the reference cloud: r = 1) vs WRONG (r = 0): under edge_only the
    # help request scores -0.1, below the wrong answer, so it gets the negative advantage
    ctx, metrics = _run(tiny_cfg, scripted, tmp_path, "edge_only", [scripted.HELP, scripted.WRONG], "phases.0.steps=1")
    assert all(m["collab_ratio"] == 0.5 and m["adv_abs_mean"] > 0.9 for m in metrics)
    assert [m["lambda_next"] for m in metrics] == [0.5]
    _, da = _run(tiny_cfg, scripted, tmp_path, "da_grpo", [scripted.HELP, scripted.WRONG], "phases.0.steps=1")
    assert all(m["adv_abs_mean"] > 0 for m in da)  # the same rollouts do carry signal under DA-GRPO


def test_tiny_gvpo_uses_the_log_ratio_to_the_reference(tiny_cfg, scripted, tmp_path):
    ctx, metrics = _run(tiny_cfg, scripted, tmp_path, "gvpo", [scripted.HELP, scripted.WRONG],
                        "train.method_args={beta=0.5}")
    # step 2 runs after one update: the policy has left the reference (here the fresh, LoRA-disabled start)
    assert ctx.method.logratio.shape == (2, 4)
    assert float(np.abs(ctx.method.logratio).max()) > 0
    assert [m["lambda_next"] for m in metrics] == [0.5, 0.5]


def test_gvpo_log_ratio_equals_the_plain_forward(tiny_cfg, scripted, tmp_path):
    """sequence_logratios uses the lean pass; on the local tokens it must equal the full-logits pass."""
    import torch

    from trainer.batch import build_batch
    from trainer.loss import token_logprobs
    from trainer.methods.gvpo import sequence_logratios

    ctx, _ = _run(tiny_cfg, scripted, tmp_path, "gvpo", [scripted.HELP, scripted.WRONG], "phases.0.steps=1")
    prompts = [[5, 6, 7, 8, 9], [5, 6, 7, 10]]  # groups with different prompt lengths (right padding)
    tokens = [[[11, 12, 13], [14, 15]], [[16], [17, 18, 19, 20]]]
    rollouts = [[type("R", (), {"token_ids": t})() for t in group] for group in tokens]
    fast = sequence_logratios(ctx.model, ctx.tokenizer.pad_token_id, prompts, rollouts, micro_batch=3)
    ids, attn, mask = build_batch([p for p in prompts for _ in range(2)], [t for g in tokens for t in g],
                                  ctx.tokenizer.pad_token_id)
    with torch.no_grad():
        plain = token_logprobs(ctx.model(input_ids=ids, attention_mask=attn).logits, ids)
        with ctx.model.disable_adapter():
            ref = token_logprobs(ctx.model(input_ids=ids, attention_mask=attn).logits, ids)
    expected = ((plain - ref) * mask).sum(-1).double().numpy().reshape(2, 2)
    assert np.abs(expected).max() > 0  # one update moved the LoRA: the check is not 0 == 0
    assert fast == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_reference_policy_is_the_starting_lora_not_the_base(tiny_cfg, scripted, tmp_path):
    """A run from a trained LoRA (init_adapter) measures GVPO's log-ratio against that LoRA: 0 before
    any update, and the frozen reference adapter neither trains nor lands in checkpoints."""
    import torch

    from trainer.methods.gvpo import sequence_logratios
    from trainer.models import REFERENCE, reference_policy
    from trainer.train import train

    first, _ = _run(tiny_cfg, scripted, tmp_path, "gvpo", [scripted.HELP, scripted.WRONG], "phases.0.steps=1")
    start = tmp_path / "gvpo" / "adapter"  # a LoRA one update away from the base
    ctx, _ = _run(tiny_cfg, scripted, tmp_path / "b", "gvpo", [scripted.HELP, scripted.WRONG], "phases.0.steps=1",
                  f'model.init_adapter="{start}"')
    assert REFERENCE in ctx.model.peft_config
    assert not (tmp_path / "b" / "gvpo" / "adapter" / REFERENCE).exists()
    prompts, rollouts = [[5, 6, 7, 8]], [[type("R", (), {"token_ids": t})() for t in ([11, 12], [13])]]
    pad = ctx.tokenizer.pad_token_id
    ref = {n.replace(f".{REFERENCE}.", "."): p for n, p in ctx.model.named_parameters() if f".{REFERENCE}." in n}
    start_lora = {n.replace(".default.", "."): p for n, p in first.model.named_parameters() if ".default." in n}
    assert ref and set(ref) == set(start_lora) and not any(p.requires_grad for p in ref.values())
    assert all(torch.allclose(start_lora[n], ref[n]) for n in ref)  # the reference is the start LoRA exactly
    # one step past its start: a non-zero log-ratio; before any step (max_steps=0): exactly 0
    assert float(np.abs(sequence_logratios(ctx.model, pad, prompts, rollouts, 8)).max()) > 0
    at_start = train(tiny_cfg('train.method="gvpo"', f'model.init_adapter="{start}"'), tmp_path / "c", max_steps=0,
                     engine_factory=scripted.ScriptedEngine([scripted.HELP]), progress=False)
    assert np.abs(sequence_logratios(at_start.model, pad, prompts, rollouts, 8)).max() < 1e-5
    with reference_policy(ctx.model):
        pass
    trainable = [n for n, p in ctx.model.named_parameters() if p.requires_grad]
    assert trainable and all(".default." in n for n in trainable)  # switching back re-enabled only "default"


def test_router_features_share_the_system_prompt_exactly():
    """prompt_features runs each task's common prefix once; the means equal one-prompt-at-a-time."""
    import torch

    from collab.tasks import get_task
    from trainer.config import ModelConfig
    from trainer.models import load_policy
    from trainer.prompting import prompt_ids
    from trainer.methods.router_classifier import _prefix_chunks, prompt_features

    model, tok = load_policy(ModelConfig(name_or_path="tiny-random"), seed=0)
    model.eval()
    prompts = [prompt_ids(tok, ex) for t in ("math", "science") for ex in get_task(t).examples("test", n=5, seed=0)]
    a, b = list(range(40)), list(range(100, 140))  # two "system prompts" of 40 tokens
    hand = _prefix_chunks([a + [1], a + [2], a + [3], b + [1], b + [2]], batch=2)
    assert [len(c) for c in hand] == [2, 1, 2]  # full chunk, then a new one at the prefix change
    assert [len(c) for c in _prefix_chunks([a + [1], a[:10] + [2]], batch=8)] == [1, 1]  # 10 < 32 shared
    with torch.no_grad():
        ref = np.stack([model(input_ids=torch.tensor([p]), output_hidden_states=True).hidden_states[-1][0].mean(0).numpy()
                        for p in prompts])
    got = prompt_features(model, prompts, tok.pad_token_id, batch=3)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)
