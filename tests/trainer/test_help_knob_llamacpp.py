"""The help knob on the real SmolLM2 GGUF with a help-trained LoRA (a short format warm-up whose
targets ask for help often): exactness and monotonicity of the bias, calibration, the sampled wish."""

from __future__ import annotations

import math

import pytest

from collab.help_knob import calibrate_bias, help_rate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def decoder(help_run):
    from llama_runtime.llm import KnobDecoder
    from trainer.calibrate import adapter_gguf
    from trainer.models import smollm2_gguf_path

    d = KnobDecoder(str(smollm2_gguf_path()), adapter_path=str(adapter_gguf(help_run, smollm2_gguf_path())))
    yield d
    d.close()


@pytest.fixture(scope="module")
def queries():
    from collab.tasks import get_task
    from trainer import prompting

    # the drills the adapter was warmed up on, half of them with a help target: it considers asking
    return [prompting.messages(ex) for ex in get_task("drill-math").examples("test", n=12, seed=0)]


def test_the_bias_decides_exactly_by_the_ask_score(decoder, queries):
    # one query per llama.cpp batch: each answer is then independent of the others' (DESIGN: exact)
    scores = [a.score for a in decoder.decode(queries, max_new_tokens=48, help_bias=-math.inf, per_call=1)]
    finite = [s for s in scores if math.isfinite(s)]
    assert len(finite) >= 3, "the help-trained adapter should consider the trigger somewhere inside <think>"
    rates = []
    for bias in sorted({-s + d for s in finite[:3] for d in (-0.01, 0.01)}):
        asked = [a.asked for a in decoder.decode(queries, max_new_tokens=48, help_bias=bias, per_call=1)]
        assert asked == [s + bias > 0 for s in scores], f"bias {bias:+.3f}"
        rates.append(sum(asked) / len(asked))
    assert rates == sorted(rates) and rates[0] < rates[-1]  # monotone, and it moves


def test_calibration_hits_tau_on_the_scores_it_was_fitted_on(decoder, queries):
    scores = [a.score for a in decoder.decode(queries, max_new_tokens=48, help_bias=-math.inf, per_call=1)]
    n, n_finite = len(scores), sum(math.isfinite(s) for s in scores)
    for tau in (0.1, 0.3, 0.5):
        bias = calibrate_bias(scores, tau)
        assert help_rate(scores, bias) == min(round(tau * n), n_finite) / n
        asked = [a.asked for a in decoder.decode(queries, max_new_tokens=48, help_bias=bias, per_call=1)]
        assert sum(asked) / n == help_rate(scores, bias)


def test_sampled_ask_frequency_matches_the_wish(decoder, queries):
    """At temperature 1 and bias 0 the knob asks at a line start with the probability the model
    gives the whole trigger there; plain sampling asks about as often (K samples per query)."""
    k, few = 24, queries[:4]
    plain = [sum(a.asked for a in decoder.decode([q] * k, max_new_tokens=48, help_bias=None, temperature=1.0,
                                                  seed=7)) / k for q in few]
    knob = [sum(a.asked for a in decoder.decode([q] * k, max_new_tokens=48, help_bias=0.0, temperature=1.0,
                                                 seed=7)) / k for q in few]
    mean_plain, mean_knob = sum(plain) / len(plain), sum(knob) / len(knob)
    sd = math.sqrt(max(mean_plain * (1 - mean_plain), 0.05) / (k * len(few)))
    assert abs(mean_plain - mean_knob) < 4 * sd + 0.05, (plain, knob)


def test_generate_at_rate_cuts_each_refused_path_at_its_drawn_candidate(help_run):
    """knob_mode "step": the engine decodes every path with asks refused, solves the bias on those
    very paths, and an asking rollout is its refused path cut at one of its candidate positions
    with the trigger appended; a non-asking rollout is the refused path itself."""
    import torch

    from collab.help_knob import calibrate_bias_paths
    from collab.protocol import HELP_TRIGGER
    from collab.tasks import get_task
    from trainer import prompting
    from trainer.config import ModelConfig
    from trainer.engines.base import truncate_response
    from trainer.engines.llamacpp import KNOB_LINE_REACH, LlamaCppEngine
    from trainer.models import load_policy, smollm2_gguf_path

    model, tok = load_policy(ModelConfig(name_or_path="smollm2"), adapter=help_run / "adapter")
    engine = LlamaCppEngine(model, tok, gguf_path=smollm2_gguf_path(), threads=1)
    try:
        prompts = [prompting.prompt_ids(tok, ex) for ex in get_task("drill-math").examples("test", n=3, seed=0)]
        torch.manual_seed(7)
        groups, bias = engine.generate_at_rate(prompts, 4, 48, 1.0, 0.5)
        torch.manual_seed(7)  # the same llama.cpp seed: the same refused paths
        seed, cands = int(torch.randint(0, 2**31 - 1, ())), []
        refused, _ = engine.sampler.sample_with_knob(
            prompts, 4, 48, 1.0, seed, engine.eos_ids, stop=engine._trigger_seen, help_bias=-math.inf,
            triggers=engine.triggers, line_reach=KNOB_LINE_REACH, candidates=cands)
    finally:
        engine.close()
    assert sum(bool(c) for c in cands) >= 3, "the help-trained adapter should meet candidate positions"
    rollouts, paths = [r for g in groups for r in g], [ids for g in refused for ids, _ in g]
    plain = [truncate_response(ids, tok, engine.eos_ids) for ids in paths]
    # a refused path that writes the trigger by itself (other tokens, mid-line) asks for sure: its
    # last candidate is its end, at +inf
    itself = [HELP_TRIGGER in p.text for p in plain]
    assert [bool(c) and c[-1][1] == math.inf for c in cands] == itself
    assert bias == pytest.approx(calibrate_bias_paths([[c[1] for c in cand] for cand in cands], 0.5))
    asked = 0
    for r, ids, cand, p in zip(rollouts, paths, cands, plain):
        if r.token_ids != p.token_ids:  # the knob drew an ask: cut at a candidate, trigger appended
            asked += 1
            assert HELP_TRIGGER in r.text
            assert any(r.token_ids == ids[:k] + list(trig) for k, _, trig, _ in cand)
        else:
            asked += HELP_TRIGGER in r.text
    assert 0 < asked < len(rollouts)  # at tau 0.5 on 12 paths: some ask, some do not
