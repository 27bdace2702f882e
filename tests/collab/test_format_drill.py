"""Format drills (collab/tasks/format_drill.py): the warm-up's only tasks."""

from __future__ import annotations

import pytest

from collab.reference import reference_completion
from collab.scoring import score
from collab.tasks import FORMAT_DRILLS, TASK_GROUPS, get_example, get_task, list_tasks


def test_drills_are_registered_and_in_no_group():
    assert set(FORMAT_DRILLS) <= set(list_tasks())
    grouped = {t for tasks in TASK_GROUPS.values() for t in tasks}
    assert not grouped & set(FORMAT_DRILLS)
    assert {get_task(t).kind for t in FORMAT_DRILLS} == {"math", "mcq", "code"}  # one per prompt kind


@pytest.mark.parametrize("name", ["drill-math", "drill-qa"])
def test_reference_answers_are_right_and_in_format(name):
    for ex in get_task(name).examples("train", n=30, seed=3):
        s = score(ex, "<think>\n" + reference_completion(ex, correct=True))
        assert s.format_ok and s.correct and s.reward == 1.0, ex.id
        assert get_example(ex.id) == ex


def test_code_drill_solutions_pass_their_tests():
    for ex in get_task("drill-code").examples("train", n=20):
        namespace: dict = {}
        exec(ex.solution + ex.tests, namespace)  # our own generated literals, not model output
        assert ex.entry_point in namespace


def test_math_drill_answers_hand_checked():
    ex = get_example("drill-math/train/1")
    assert ex.question == "What is the last number of the list [82, 16, 85, 56, 7, 43]?"
    assert ex.answer == "43" and ex.meta["first_step"] == "The list is 82, 16, 85, 56, 7, 43."


@pytest.mark.parametrize("name", FORMAT_DRILLS)
def test_first_steps_are_diverse_and_splits_disjoint(name):
    train = get_task(name).examples("train", n=40)
    assert len({ex.meta["first_step"] for ex in train}) >= 30  # not one memorisable string
    test = get_task(name).examples("test", n=40)
    assert not {(ex.question, ex.choices) for ex in train} & {(ex.question, ex.choices) for ex in test}
