"""Graders: math exact vs equivalence, multiple choice, code dispatch (collab/grading.py)."""

import json

import pytest

from collab.grading import MATH_GRADERS, grade_math, grade_mcq, mcq_choice_indices, stdio_cases


# --- math ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "extracted, reference, expected",
    [("42", "42", True), (" 42 ", "42", True), ("42.0", "42", False), ("0.5", "1/2", False),
     ("\\frac{1}{2}", "\\frac{1}{2}", True), (None, "42", False)],
)
def test_math_exact_is_the_papers_string_match(extracted, reference, expected):
    assert grade_math(extracted, reference, "exact") is expected


@pytest.mark.parametrize(
    "extracted, reference, expected",
    [("0.5", "\\frac{1}{2}", True), ("1/2", "0.5", True), ("42.0", "42", True),
     ("43", "42", False), ("x+1", "1+x", True), (None, "1", False)],
)
def test_math_equiv_uses_math_verify(extracted, reference, expected):
    assert grade_math(extracted, reference, "equiv") is expected


def test_math_equiv_works_off_the_main_thread():
    """math-verify's SIGALRM timeout cannot be set from a worker thread; we run without it there."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(grade_math, "0.5", "1/2", "equiv").result() is True


def test_unknown_math_grader():
    assert MATH_GRADERS == ("exact", "equiv")
    with pytest.raises(ValueError, match="unknown math grader"):
        grade_math("1", "1", "fuzzy")


# --- multiple choice ----------------------------------------------------------------------------

CHOICES = ("Mercury", "Venus", "Earth", "Mars")


@pytest.mark.parametrize(
    "extracted",
    ["B", "b", "(B)", "B.", "B)", "[B]", " B ", "2", "(2)", "\\text{B}", "\\textbf{b}",
     "Venus", "  venus ", "B. Venus", "(B) Venus", "b) venus", "\\text{(B) Venus}"],
)
def test_mcq_accepts_letter_index_and_text(extracted):
    assert grade_mcq(extracted, "B", CHOICES)


@pytest.mark.parametrize("extracted", ["A", "1", "Mars", "E", "5", "0", "Ven", "B or C", "A. Venus", "", None])
def test_mcq_rejects_other_choices_and_garbage(extracted):
    assert not grade_mcq(extracted, "B", CHOICES)


def test_mcq_ambiguous_answer_is_wrong():
    numeric = ("3", "5", "7", "9")
    assert mcq_choice_indices("3", numeric) == {0, 2}  # text of A, index of C
    assert not grade_mcq("3", "A", numeric)
    assert not grade_mcq("3", "C", numeric)
    assert grade_mcq("A", "A", numeric)
    assert grade_mcq("7", "C", numeric)  # index 7 is out of range: only the text of C remains


def test_mcq_without_choice_texts_grades_letters_and_indices():
    assert grade_mcq("c", "C", ())
    assert grade_mcq("3", "C", ())
    assert not grade_mcq("Earth", "C", ())


def test_mcq_reference_must_be_a_letter():
    with pytest.raises(ValueError, match="letter"):
        grade_mcq("B", "2", CHOICES)


# --- code: test-spec parsing (running programs is covered in test_scoring with the real sandbox) --

def test_stdio_cases_parsed_from_json():
    spec = json.dumps({"stdio": [["1 2\n", "3\n"], ["5 5\n", "10\n"]]})
    assert stdio_cases(spec) == [("1 2\n", "3\n"), ("5 5\n", "10\n")]


def test_python_tests_are_not_stdio():
    assert stdio_cases("assert f(1) == 2\n") is None
    assert stdio_cases("def check(candidate):\n    assert candidate(1) == 2\n") is None
    assert stdio_cases("{1: 2}[1] == 2 or exit(1)\n") is None  # a dict literal, not JSON


def test_json_tests_without_stdio_refused():
    with pytest.raises(ValueError, match="stdio"):
        stdio_cases('{"cases": []}')
