"""KnobDecoder._answer: the ask score of an answer, given the bias it was decoded at (logic only;
the decoding itself is tested on the real model in tests/trainer/test_help_knob_llamacpp.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

from collab.protocol import HELP_TRIGGER
from llama_runtime.llm import KnobDecoder

PIECES = {1: "Step 1: add. ", 2: HELP_TRIGGER, 3: "The answer is 4.", 9: "<eos>"}


def answer(toks, score, bias):
    fake = SimpleNamespace(sampler=SimpleNamespace(piece=PIECES.__getitem__), eos={9})
    return KnobDecoder._answer(fake, [0, 0], toks, score, bias)


def test_an_ask_the_knob_made_keeps_its_score():
    a = answer([1, 2], 2.0, -1.0)  # 2 - 1 > 0: the knob wrote the trigger
    assert a.asked and a.score == 2.0 and a.finish == "help"


def test_an_ask_the_knob_did_not_make_asks_at_every_bias():
    # refused (-inf), or below its bias: the path wrote the trigger by itself
    assert answer([1, 2], -3.0, -math.inf).score == math.inf
    assert answer([1, 2], -3.0, 1.0).score == math.inf
    assert answer([1, 2], -math.inf, 0.0).score == math.inf


def test_answers_that_do_not_ask_and_plain_decodes_keep_their_score():
    a = answer([1, 3, 9], -3.0, -math.inf)
    assert not a.asked and a.score == -3.0 and a.finish == "stop"
    assert answer([1, 2], -math.inf, None).score == -math.inf  # no knob: no score to speak of
