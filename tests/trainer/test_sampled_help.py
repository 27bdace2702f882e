"""The sampled help rate of an evaluation (trainer/evaluate.py: sampled_help), on a scripted engine."""

from __future__ import annotations

import types

import pytest

from collab.reference import reference_completion
from collab.tasks import get_task
from trainer.evaluate import sampled_help
from trainer.intervals import wilson_interval

HELP = "<think>\nStep 1: The list is long.\nI need external assistance."
BAD_HELP = "Hmm. I need external assistance."  # a trigger without the step format: no cost (eq. 14)


class CyclingEngine:
    """Answers the j-th sample of every prompt with texts[j % len(texts)]; records the calls."""

    def __init__(self, texts):
        self.texts, self.calls = texts, []

    def generate(self, prompts, n, max_new_tokens, temperature):
        self.calls.append((len(prompts), n, temperature))
        return [[types.SimpleNamespace(text=self.texts[j % len(self.texts)]) for j in range(n)] for _ in prompts]


def test_counts_cost_trigger_and_local_accuracy():
    exs = get_task("drill-math").examples("test", n=5)
    right = "<think>\n" + reference_completion(exs[0])  # right for exs[0] only
    engine = CyclingEngine([HELP, BAD_HELP, right, right])
    res = sampled_help(engine, lambda ex: [1, 2], {"t": exs}, k=4, max_new_tokens=8, temperature=1.0,
                       math_grader="exact", batch_size=2)["t"]
    assert engine.calls == [(2, 4, 1.0), (2, 4, 1.0), (1, 4, 1.0)]
    # 20 responses: 5 costed help requests, 5 bare triggers, 10 answers of which 2 right (exs[0])
    assert (res.sampled_k, res.sampled_n) == (4, 20)
    assert res.sampled_collab_ratio == 0.25 and res.sampled_help_rate == 0.5
    assert res.sampled_collab_ci == pytest.approx(wilson_interval(5, 20))
    assert res.sampled_local_accuracy == pytest.approx(2 / 10)
    assert res.as_dict()["sampled_collab_ci"] == res.sampled_collab_ci
