"""`dagrpo eval --run DIR` is the run's own final evaluation: same engine, same cloud draws, same numbers."""

from __future__ import annotations

import json

import pytest

from trainer.commands import eval_command
from trainer.train import train


def _phase_end(run, tag="phase0_end"):
    """The run's greedy phase-end numbers (`dagrpo eval` is greedy: the sampled help rate that the
    run adds, with its own per-evaluation seed, is not part of what it reproduces)."""
    from dataclasses import fields

    from trainer.evaluate import TaskEval

    keys = {f.name for f in fields(TaskEval)}
    return {r["task"]: {k: v for k, v in r.items() if k in keys}
            for r in map(json.loads, (run / "evals.jsonl").read_text().splitlines()) if r["tag"] == tag}


@pytest.mark.slow
def test_eval_of_a_run_reproduces_its_phase_end_numbers(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg("train.max_new_tokens=16", "train.eval_max_new_tokens=24"), run, progress=False)
    assert eval_command(run=str(run), adapter=None, config=None, n=None, tasks=None, base=False) == 0
    assert json.loads((run / "eval.json").read_text()) == _phase_end(run)


@pytest.mark.slow
@pytest.mark.integration
def test_a_llamacpp_run_evaluates_on_llamacpp_and_reproduces_its_numbers(tmp_path):
    pytest.importorskip("llama_cpp")
    from trainer.config import load_config

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'train.engine="llamacpp"', "train.engine_threads=1", "train.G=2",
        "train.batch_prompts=1", "train.max_new_tokens=8", "train.eval_n=2", "train.eval_max_new_tokens=12",
        "train.eval_at_start=false", 'phases=[{tasks=["math"], steps=1, tau=0.3}]',
    ])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    assert eval_command(run=str(run), adapter=None, config=None, n=None, tasks=None, base=False) == 0
    assert json.loads((run / "eval.json").read_text()) == _phase_end(run)


@pytest.mark.slow
@pytest.mark.integration
def test_rollout_knob_calibrates_moves_and_deploys_the_help_bias(tmp_path):
    """train.rollout_knob on llama.cpp: each task's bias is calibrated at its phase start, every step
    samples with it and moves it by knob_feedback, a new tau re-solves it, evaluations use it,
    state.json keeps it, and `dagrpo eval --run` reproduces the phase-end numbers with it."""
    pytest.importorskip("llama_cpp")
    from collab.help_knob import knob_feedback, rollout_bias
    from trainer.knob_loop import _decode
    from trainer.config import load_config

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'train.engine="llamacpp"', "train.engine_threads=1", "train.G=2",
        "train.batch_prompts=1", "train.max_new_tokens=12", "train.eval_n=2", "train.eval_max_new_tokens=12",
        "train.eval_samples=2", "train.eval_at_start=false", "train.rollout_knob=true", "train.knob_calib_n=2",
        "train.knob_gain=0.5", 'phases=[{tasks=["math"], steps=2, tau_schedule=[[0, 0.3], [1, 0.6]]}]',
    ])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    calib = [json.loads(line) for line in (run / "knob_calibration.jsonl").read_text().splitlines()]
    assert [(c["phase"], c["at"], c["task"], c["tau"], c["k"], c["n_queries"]) for c in calib] == [
        (0, "phase_start", "math", 0.3, 2, 2), (0, "phase_end", "math", 0.6, 2, 2)]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["help_bias"] == calib[0]["bias"]
    offset = 0.0
    for m in metrics:  # bias = anchor (the step's scores calibrated) + offset (integral of the ratio's error)
        offset = knob_feedback(offset, m["collab_ratio"], m["tau"], 0.5)
        assert m["help_bias_offset"] == pytest.approx(offset)
        assert m["help_bias_next"] == pytest.approx(max(-50, min(50, m["help_bias_anchor"] + offset)))
    # step 2 is budgeted at 0.6: its anchor is solved anew for it on step 1's scores (bias_for)
    assert [m["tau"] for m in metrics] == [0.3, 0.6]
    m0 = metrics[0]
    assert len(m0["help_ask_scores"]) == 2  # B * G rollouts' ask scores
    _, bias = rollout_bias(_decode(m0["help_ask_scores"]), 0.6, m0["help_bias_offset"], m0["help_bias_anchor"])
    assert metrics[1]["help_bias"] == pytest.approx(bias)  # (the re-solve itself: the unit test below)
    state = json.loads((run / "state.json").read_text())
    # the phase end calibrated the bias anew on the final adapter: that is what evaluations use
    assert state["help_bias"] == {"math": calib[1]["bias"]} and state["knob_calibrated"] == ["0/math", "0/end/math"]
    assert calib[1]["bias_before"] == metrics[-1]["help_bias_next"]
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["help_bias"] for e in evals] == [state["help_bias"]["math"]]
    assert eval_command(run=str(run), adapter=None, config=None, n=None, tasks=None, base=False) == 0
    assert json.loads((run / "eval.json").read_text()) == _phase_end(run)


def test_rollout_knob_needs_the_llamacpp_engine():
    from dagrpo.errors import UserError
    from trainer.config import load_config

    with pytest.raises(UserError, match="rollout_knob"):
        load_config(None, ['train.engine="torch"', "train.rollout_knob=true"])


def test_trigger_weights_scale_only_the_trailing_trigger_of_asking_rows():
    import torch

    from trainer.batch import build_batch
    from trainer.knob_loop import trigger_weights

    prompts, comps = [[1, 2], [1, 2, 3]], [[5, 8, 9], [5, 6]]  # row 0 ends with the trigger [8, 9]
    _, _, mask = build_batch(prompts, comps, 0)
    w = trigger_weights(mask, [2, 3], comps, ([8, 9], [7, 8, 9]), 0.25)
    # row 0: completion targets at positions 1, 2, 3; the trigger's two tokens at 2, 3
    assert w[0].tolist() == [0.0, 1.0, 0.25, 0.25]
    assert w[1].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert torch.equal(trigger_weights(mask, [2, 3], comps, ([8, 9], [7, 8, 9]), 1.0), mask.float())


def test_bias_for_resolves_the_anchor_for_a_new_tau_on_the_stored_scores():
    from types import SimpleNamespace

    from trainer.knob_loop import bias_for

    def ctx(knob=True):
        cfg = SimpleNamespace(train=SimpleNamespace(rollout_knob=knob))
        # scores 0 and -inf (no candidate): mean sigmoid(s + b) = sigmoid(b) / 2; solved at tau 0.4
        return SimpleNamespace(cfg=cfg, help_bias={"math": 1.9},
                               knob_state={"math": {"anchor": 1.4, "offset": 0.5, "tau": 0.4, "scores": [0.0, None]}})

    c = ctx()
    assert bias_for(c, "math", 0.4) == 1.9  # same tau: the bias as solved
    assert bias_for(c, "math") == 1.9  # no tau given: as solved
    # tau 0.25: sigmoid(b) / 2 = 0.25 -> anchor 0; bias = anchor + offset 0.5
    assert bias_for(c, "math", 0.25) == pytest.approx(0.5, abs=1e-5)
    assert c.knob_state["math"]["anchor"] == pytest.approx(0.0, abs=1e-5)
    assert c.knob_state["math"]["tau"] == 0.25 and c.knob_state["math"]["offset"] == 0.5
    assert bias_for(ctx(knob=False), "math", 0.25) is None
    assert bias_for(c, "code", 0.25) is None  # a task never calibrated has no bias


def test_stored_ask_scores_round_trip_through_strict_json_infinities_included():
    import math

    from trainer.knob_loop import _decode, _encode

    scores = [1.5, -math.inf, math.inf, -2.0]
    text = json.dumps(_encode(scores), allow_nan=False)  # raises on a bare Infinity
    assert json.loads(text) == [1.5, None, "inf", -2.0]
    assert _decode(json.loads(text)) == scores


def test_knob_sample_takes_the_engines_bias_in_step_mode_and_bias_for_in_anchor_mode():
    from types import SimpleNamespace

    from trainer.knob_loop import sample

    calls = []
    engine = SimpleNamespace(
        generate_at_rate=lambda p, n, m, t, tau: (calls.append(("rate", tau)) or [["r"]], 1.25),
        generate=lambda p, n, m, t, **kw: calls.append(("plain", kw)) or [["r"]])

    def ctx(mode, knob=True):
        tc = SimpleNamespace(rollout_knob=knob, knob_mode=mode, G=2, max_new_tokens=8, temperature=1.0)
        return SimpleNamespace(cfg=SimpleNamespace(train=tc), engine=engine, help_bias={"math": 0.5},
                               knob_state={})

    c = ctx("step")
    assert sample(c, "math", [[1]], 0.3) == ([["r"]], 1.25) and c.help_bias["math"] == 1.25
    assert sample(ctx("anchor"), "math", [[1]], 0.3) == ([["r"]], 0.5)
    assert sample(ctx("step", knob=False), "math", [[1]], 0.3) == ([["r"]], None)
    assert calls == [("rate", 0.3), ("plain", {"help_bias": 0.5}), ("plain", {})]


@pytest.mark.slow
@pytest.mark.integration
def test_da_grpo_knob_solves_each_steps_bias_and_deploys_the_phase_end_calibration(tmp_path):
    """da_grpo_knob (knob_mode "step"): no phase-start calibration, each step records the bias it
    solved on its own paths (no anchor / offset), the phase end calibrates, evaluations use that."""
    pytest.importorskip("llama_cpp")
    from trainer.config import load_config

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'train.method="da_grpo_knob"', "train.engine_threads=1", "train.G=2",
        "train.batch_prompts=1", "train.max_new_tokens=12", "train.eval_n=2", "train.eval_max_new_tokens=12",
        "train.eval_samples=2", "train.eval_at_start=false", "train.knob_calib_n=2",
        'phases=[{tasks=["math"], steps=2, tau=0.3}]',
    ])
    assert cfg.train.rollout_knob and cfg.train.knob_mode == "step"
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    calib = [json.loads(line) for line in (run / "knob_calibration.jsonl").read_text().splitlines()]
    assert [(c["at"], c["task"]) for c in calib] == [("phase_end", "math")]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(-50 <= m["help_bias"] <= 50 and m["help_bias_next"] is None for m in metrics)
    assert not any("help_bias_anchor" in m for m in metrics)
    state = json.loads((run / "state.json").read_text())
    assert state["help_bias"] == {"math": calib[0]["bias"]} and calib[0]["bias_before"] == metrics[-1]["help_bias"]
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["help_bias"] for e in evals] == [calib[0]["bias"]]
