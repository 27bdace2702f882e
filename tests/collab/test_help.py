"""One definition of a help request (eq. 14): trigger + a local part in the step format."""

import pytest

from collab.help import count_help, is_help_request
from collab.protocol import HELP_TRIGGER as T
from collab.scoring import score
from collab.tasks.base import Example

MATH = Example(id="t/math/0", task="math", kind="math", question="2 + 2?", answer="4")
HELP = f"<think>\nStep 1: this looks hard.\n{T}"
BARE = T  # nothing before the trigger: an empty local part respects the format
BAD = f"1. this looks hard.\n{T}"  # trigger after a broken format: not a help request
TOO_MANY = "<think>\n" + "".join(f"Step {k}: x.\n" for k in range(1, 6)) + T  # math allows 4 steps
LOCAL = "<think>\nStep 1: add.\n</think>\n<answer>Final answer: \\boxed{4}</answer>"


@pytest.mark.parametrize("text, expected", [(HELP, True), (BARE, True), (BAD, False), (TOO_MANY, False),
                                            (LOCAL, False)])
def test_is_help_request(text, expected):
    assert is_help_request(text, "math") is expected


def test_count_help_counts_only_eq14_requests():
    assert count_help([HELP, BAD, LOCAL, BARE, TOO_MANY], "math") == 2


@pytest.mark.parametrize("text", [HELP, BARE, BAD, TOO_MANY, LOCAL])
def test_score_agrees_with_the_definition(text):
    s = score(MATH, text)
    assert s.help_request is is_help_request(text, "math")
    assert s.cost == (1.0 if s.help_request else 0.0)
