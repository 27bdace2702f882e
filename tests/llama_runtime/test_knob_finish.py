"""_KnobState.finish: the ask score of a sequence at its end (logic only; the decoding itself is
tested on the real model in tests/trainer/test_help_knob_llamacpp.py)."""

from __future__ import annotations

import math

from llama_runtime.llm import _KnobState


def state(bias, score, asked):
    k = _KnobState(None, ([1], [2]), bias, [0], 48)
    k.scores[0], k.asked[0] = score, asked
    if math.isfinite(score):
        k.candidates[0].append((3, score, [1], [-0.5]))
    return k


def test_an_ask_the_knob_made_keeps_its_score():
    k = state(-1.0, 2.0, asked=True)  # 2 - 1 > 0: the knob wrote the trigger
    k.finish(0, 4, wrote_trigger=True)
    assert k.scores[0] == 2.0 and k.candidates[0] == [(3, 2.0, [1], [-0.5])]


def test_an_ask_the_knob_did_not_make_asks_at_every_bias():
    # refused (-inf), or below its bias: the path wrote the trigger by itself
    for bias, score in ((-math.inf, -3.0), (1.0, -3.0), (0.0, -math.inf)):
        k = state(bias, score, asked=False)
        k.finish(0, 10, wrote_trigger=True)
        assert k.scores[0] == math.inf
        assert k.candidates[0][-1] == (10, math.inf, [], [])  # its end: a cut there keeps it whole


def test_answers_that_do_not_ask_keep_their_score():
    k = state(-math.inf, -3.0, asked=False)
    k.finish(0, 10, wrote_trigger=False)
    assert k.scores[0] == -3.0 and k.candidates[0] == [(3, -3.0, [1], [-0.5])]
