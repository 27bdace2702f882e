"""Correctness graders per task kind (paper F.2: "Correctness Evaluation").

- Math, `exact` (the paper's rule): the boxed answer equals the reference as strings, after
  stripping surrounding whitespace only (`0.5` != `1/2`, `42` != `42.0`).
- Math, `equiv`: math-verify decides mathematical equivalence (`1/2` == `0.5` == `\\frac{1}{2}`).
  Its parse/verify timeouts use SIGALRM, which only the main thread may set; off the main thread
  they run without a timeout.
- Multiple choice: the boxed text is matched against the choices; see `mcq_choice_indices` for what
  is accepted. Correct only when it denotes exactly the reference choice (an ambiguous answer such
  as `3` where choice A reads "3" but index 3 is choice C is wrong).
- Code: the extracted program runs in the sandbox against every test of the example; correct only
  if all pass. `Example.tests` is JSON `{"stdio": [[input, expected_output], ...]}` for stdin/stdout
  problems, otherwise Python test code (asserts, or HumanEval's `check(candidate)`) that the sandbox
  runs after the program with `entry_point` naming the function under test.
"""

from __future__ import annotations

import json
import re
import threading
from typing import TYPE_CHECKING, Literal

from collab.prompts import CHOICE_LETTERS
from collab.tasks.base import Example

if TYPE_CHECKING:
    from collab.sandbox import SandboxLimits, SandboxResult

MathGrader = Literal["exact", "equiv"]
MATH_GRADERS: tuple[str, ...] = ("exact", "equiv")
MATH_VERIFY_TIMEOUT_S = 5

# `\text{B}`, `\textbf{B}`, `\mathrm{B}` wrappers around a choice.
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}$", re.DOTALL)
# `B`, `(B)`, `B.`, `B)`, `[B]` -- a letter or an index with optional brackets/trailing dot.
# How a choice's text may be written: bare, or after its letter (`B. Venus`, `(B) Venus`, `B) Venus`).
_TEXT_FORMS = ("{1}", "{0}. {1}", "({0}) {1}", "{0}) {1}")
_LABEL = re.compile(r"^[(\[]?\s*([A-Za-z]|\d+)\s*[)\].]?$")


def grade_math(extracted: str | None, reference: str, grader: MathGrader = "exact") -> bool:
    """True when the boxed answer matches the reference under the chosen grader."""
    if grader not in MATH_GRADERS:
        raise ValueError(f"unknown math grader {grader!r}; expected one of {MATH_GRADERS}")
    if extracted is None:
        return False
    if grader == "exact":
        return extracted.strip() == reference.strip()
    return _math_equiv(extracted, reference)


def _math_equiv(extracted: str, reference: str) -> bool:
    from math_verify import parse, verify  # sympy behind it: ~2 s to import, so only when used

    timeout = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"${reference}$", parsing_timeout=timeout)
    pred = parse(f"${extracted}$", parsing_timeout=timeout)
    return bool(gold and pred and verify(gold, pred, timeout_seconds=timeout))


def mcq_choice_indices(extracted: str, choices: tuple[str, ...]) -> set[int]:
    """Every 0-based choice index the boxed text could denote.

    Accepted, case-insensitive, optionally wrapped in `\\text{}`: a letter within the number of
    choices (`B`, `b`, `(B)`, `B.`, `B)`), a 1-based index (`2` is the second choice, also `(2)`),
    or the text of a choice (case and spacing ignored), bare or after its own letter (`B. Paris`,
    `(B) Paris`, `B) Paris`).
    """
    text = _unwrap(extracted)
    indices: set[int] = set()
    label = _LABEL.match(text)
    if label:
        token = label.group(1)
        if token.isdigit():
            indices.add(int(token) - 1)
        else:
            indices.add(CHOICE_LETTERS.find(token.upper()))
    wanted = _norm(text)
    for i, choice in enumerate(choices):
        letter = CHOICE_LETTERS[i]
        if wanted in {_norm(form.format(letter, choice)) for form in _TEXT_FORMS}:
            indices.add(i)
    n = len(choices) or len(CHOICE_LETTERS)  # choices unknown (grading by letter only): A..J
    return {i for i in indices if 0 <= i < n}


def grade_mcq(extracted: str | None, answer: str, choices: tuple[str, ...]) -> bool:
    """True when the boxed text denotes exactly the reference letter `answer` ("A".."J")."""
    if extracted is None:
        return False
    if len(answer) != 1 or answer.upper() not in CHOICE_LETTERS:
        raise ValueError(f"a multiple-choice reference must be a letter A-J, got {answer!r}")
    correct = CHOICE_LETTERS.index(answer.upper())
    return mcq_choice_indices(extracted, choices) == {correct}


def grade_code(
    program: str | None, example: Example, limits: SandboxLimits | None = None
) -> SandboxResult | None:
    """Run `program` against all tests of `example` in the sandbox; None when there is no program."""
    if program is None:
        return None
    from collab.sandbox import run_code_tests, run_stdio_tests  # spawns processes: only for code

    cases = stdio_cases(example.tests)
    if cases is not None:
        return run_stdio_tests(program, cases, limits=limits)
    return run_code_tests(program, example.tests, entry_point=example.entry_point, limits=limits)


def stdio_cases(tests: str) -> list[tuple[str, str]] | None:
    """The (stdin, expected stdout) pairs of a stdio task; None when `tests` is Python test code."""
    if not tests.lstrip().startswith("{"):
        return None
    try:
        spec = json.loads(tests)
    except json.JSONDecodeError:
        return None  # a Python dict literal opening the test code, not a stdio spec
    if not isinstance(spec, dict) or "stdio" not in spec:
        raise ValueError("JSON tests must be an object with a 'stdio' list of [input, output] pairs")
    return [(str(inp), str(out)) for inp, out in spec["stdio"]]


def _unwrap(text: str) -> str:
    text = text.strip()
    wrapped = _TEXT_WRAPPER.match(text)
    return wrapped.group(1).strip() if wrapped else text


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()
