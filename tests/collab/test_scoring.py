"""score(): every case of eq. 12 end to end, composition, and each grader kind."""

import json

import pytest

from collab.protocol import HELP_TRIGGER as T
from collab.reference import reference_completion
from collab.scoring import Scored, score
from collab.tasks.base import Example

MATH = Example(id="t/math/0", task="math", kind="math", question="2 + 2?", answer="4",
               solution="Add 2 and 2.\nThe sum is 4.")
MCQ = Example(id="t/mcq/0", task="science", kind="mcq", question="Which planet is red?",
              answer="D", choices=("Mercury", "Venus", "Earth", "Mars"), solution="Mars is red.")
LAM = 0.25


def local(answer: str, steps: str = "Step 1: add.") -> str:
    return f"<think>\n{steps}\n</think>\n<answer>Final answer: \\boxed{{{answer}}}</answer>"


HELP = f"<think>\nStep 1: this looks hard.\n{T} ignored trailing text \\boxed{{999}}"
BAD_HELP = f"1. this looks hard.\n{T}"  # help asked, but the local part breaks the step format


@pytest.mark.parametrize(
    "local_text, cloud_text, r, c, shaped, correct, fmt, asked",
    [
        (local("4"), None, 1.0, 0.0, 1.0, True, True, False),  # correct, local
        (HELP, reference_completion(MATH), 1.0, 1.0, 0.75, True, True, True),  # correct with cloud
        ("The answer is \\boxed{4}", None, -0.1, 0.0, -0.1, True, False, False),  # format, no help
        (BAD_HELP, reference_completion(MATH), -0.1, 0.0, -0.1, True, False, True),  # format, help
        (HELP, reference_completion(MATH, correct=False), 0.0, 1.0, -0.25, False, True, True),
        (local("5"), None, 0.0, 0.0, 0.0, False, True, False),  # wrong, local
    ],
    ids=["correct-local", "correct-cloud", "format-local", "format-help", "wrong-cloud", "wrong"],
)
def test_eq12_cases(local_text, cloud_text, r, c, shaped, correct, fmt, asked):
    s = score(MATH, local_text, cloud_text)
    assert (s.reward, s.cost, s.correct, s.format_ok, s.requests_help) == (r, c, correct, fmt, asked)
    assert s.reward - LAM * s.cost == pytest.approx(shaped)  # eq. 12


def test_composition_in_the_scored_response():
    cloud = reference_completion(MATH)
    s = score(MATH, HELP, cloud)
    assert s.local_part == "<think>\nStep 1: this looks hard.\n"
    assert s.composed == s.local_part + cloud
    assert "999" not in s.composed and T not in s.composed
    assert s.extracted == "4"


def test_local_box_before_the_trigger_loses_to_the_cloud_answer():
    text = f"<think>\nStep 1: maybe \\boxed{{4}}\n{T}"
    s = score(MATH, text, reference_completion(MATH, correct=False))
    assert s.extracted == "5" and not s.correct


def test_help_without_cloud_reply_is_graded_as_is_and_still_costs():
    s = score(MATH, HELP)
    assert s.composed == HELP and s.extracted == "999"
    assert (s.reward, s.cost, s.correct, s.format_ok) == (0.0, 1.0, False, True)


def test_trigger_at_once_is_well_formed_help():
    s = score(MATH, T, reference_completion(MATH))
    assert (s.reward, s.cost, s.format_ok) == (1.0, 1.0, True)


def test_math_grader_choice():
    text = local("4.0")
    assert score(MATH, text).correct is False
    assert score(MATH, text, math_grader="equiv").correct is True


def test_mcq_scoring():
    assert score(MCQ, local("D")).reward == 1.0
    assert score(MCQ, local("4")).reward == 1.0  # index
    assert score(MCQ, local("Mars")).reward == 1.0  # choice text
    assert score(MCQ, local("C")).reward == 0.0
    s = score(MCQ, HELP, reference_completion(MCQ))
    assert (s.reward, s.cost) == (1.0, 1.0)


def test_scored_is_frozen():
    s = score(MATH, local("4"))
    assert isinstance(s, Scored)
    with pytest.raises(AttributeError):
        s.reward = 0.0


# --- code: the real sandbox ---------------------------------------------------------------------

ADD = Example(id="t/code/0", task="code", kind="code", question="add(a, b)", entry_point="add",
              tests="assert add(1, 2) == 3\nassert add(-1, 1) == 0\n",
              solution="def add(a, b):\n    return a + b\n")
ECHO_SUM = Example(id="t/code/1", task="code", kind="code", question="sum two ints from stdin",
                   tests=json.dumps({"stdio": [["1 2\n", "3\n"], ["4 5\n", "9\n"]]}),
                   solution="a, b = map(int, input().split())\nprint(a + b)\n")


def code_response(program: str) -> str:
    return f"<think>\nStep 1: write it.\n</think>\n<answer>\n```python\n{program}```\n</answer>"


@pytest.mark.integration
def test_code_runs_all_tests_in_the_sandbox():
    assert score(ADD, code_response(ADD.solution)).reward == 1.0
    assert score(ADD, code_response("def add(a, b):\n    return a - b\n")).reward == 0.0
    assert score(ECHO_SUM, code_response(ECHO_SUM.solution)).reward == 1.0
    assert score(ECHO_SUM, code_response("print(3)\n")).reward == 0.0  # passes one case of two
    s = score(ADD, f"<think>\nStep 1: hard.\n{T}", reference_completion(ADD))
    assert (s.reward, s.cost, s.correct) == (1.0, 1.0, True)


def test_code_without_a_block_is_wrong_without_running_anything():
    s = score(ADD, "<think>\nStep 1: x\n</think>\n<answer>\\boxed{add}</answer>")
    assert (s.correct, s.format_ok, s.extracted, s.reward) == (False, False, None, -0.1)
