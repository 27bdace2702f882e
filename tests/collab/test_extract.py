"""Answer extraction and the step-format check (collab/extract.py)."""

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from collab.extract import (
    MAX_COMPLETION_CHARS,
    check_format,
    code_block,
    last_boxed,
    think_answer,
)


# --- last_boxed ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("Final answer: \\boxed{42}", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{\\sqrt{\\frac{a}{b^{2}}}} done", "\\sqrt{\\frac{a}{b^{2}}}"),  # deeper nesting
        ("\\boxed{1} then \\boxed{2}", "2"),  # several: the last
        ("\\boxed {7}", "7"),  # space before the brace is accepted
        ("\\boxed{ 7 }", "7"),  # content stripped
        ("\\boxed{}", ""),  # balanced but empty
        ("no box here", None),
        ("\\boxed{\\frac{1}{2}", None),  # unbalanced
        ("\\boxed{3} and \\boxed{4", None),  # the last one is unbalanced: malformed, not the 3
        ("\\boxed 5", None),  # brace-less form is not accepted
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


# --- think_answer -------------------------------------------------------------------------------

def test_think_answer():
    assert think_answer("<think>a</think>\n<answer>b</answer>") == ("a", "b")
    assert think_answer("<think>a</think> no answer") == ("a", None)
    assert think_answer("<answer>b</answer>") == (None, "b")
    assert think_answer("<think>unclosed <answer>b</answer>") == (None, "b")
    # the answer is looked for after the think block
    assert think_answer("<answer>x</answer><think>a</think><answer>y</answer>") == ("a", "y")


# --- code_block ---------------------------------------------------------------------------------

def test_code_block_python_tag():
    assert code_block("text\n```python\ndef f():\n    return 1\n```\n") == "def f():\n    return 1\n"


def test_code_block_without_language_tag():
    assert code_block("```\nx = 1\n```") == "x = 1\n"


def test_code_block_takes_the_last_python_block():
    text = "```python\na = 1\n```\nthen\n```py\nb = 2\n```\n```bash\nls\n```"
    assert code_block(text) == "b = 2\n"


def test_code_block_ignores_other_languages_and_unclosed_fences():
    assert code_block("```bash\nls\n```") is None
    assert code_block("```python\nx = 1\n") is None
    assert code_block("no code") is None


# The quadratic regex code_block used before (issue 22, item 8): the reference for equivalence.
_OLD_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def _old_code_block(text: str) -> str | None:
    bodies = [
        m.group(2) for m in _OLD_FENCE.finditer(text) if m.group(1).lower() in {"", "python", "python3", "py"}
    ]
    return bodies[-1] if bodies else None


# Adversarial pieces: fences, backtick runs, tags, the newlines and tabs the grammar turns on.
_FENCE_PIECES = st.sampled_from(["```", "`", "\n", " ", "\t", "py", "x", "bash", "python3 extra", "é"])
_FENCE_TEXT = st.lists(st.one_of(_FENCE_PIECES, _FENCE_PIECES, st.text(max_size=3)), max_size=30)


@settings(max_examples=1000, deadline=None)
@given(_FENCE_TEXT.map("".join))
@example("```\nx````\ny```")  # a closing fence of four backticks: the fourth opens nothing
@example("```\tbash\nls\n```")  # a tab before the tag
@example("``` bash\nls\n```\n```\npy\n```")
@example("````\n```")
def test_code_block_matches_the_old_regex_on_adversarial_strings(text):
    assert code_block(text) == _old_code_block(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_code_block_matches_the_old_regex_on_any_text(text):
    assert code_block(text) == _old_code_block(text)


def test_code_block_after_a_four_backtick_closing_fence():
    assert code_block("```\nx````\ny```") == "x"


def test_code_block_on_the_quadratic_input_of_the_old_regex():
    # 0.37 s at 20k backticks with the old regex, x4 per doubling; see bench/extract_adversarial.py.
    assert code_block("`" * MAX_COMPLETION_CHARS) is None
    assert code_block("```\n" + "`" * (MAX_COMPLETION_CHARS - 10) + "x") == ""


def test_completions_over_the_cap_have_no_answer_and_no_format():
    body = "Step 1: a\n" * (MAX_COMPLETION_CHARS // 10)
    long = f"<think>{body}</think><answer>```python\nx = 1\n``` \\boxed{{1}}</answer>"
    assert len(long) > MAX_COMPLETION_CHARS
    assert code_block(long) is None and last_boxed(long) is None
    assert not check_format(long, "code") and not check_format(long, "code", partial=True)


# --- check_format -------------------------------------------------------------------------------

def resp(steps: str, answer: str = "Final answer: \\boxed{4}") -> str:
    return f"<think>\n{steps}\n</think>\n<answer>{answer}</answer>"


GOOD = resp("Step 1: 2 + 2.\nStep 2: that is 4.")
CODE_ANSWER = "\n```python\ndef f(x):\n    return x\n```\n"


def test_well_formed():
    assert check_format(GOOD, "math")
    assert check_format("<think>Step 1: x</think><answer>\\boxed{B}</answer>", "mcq")  # inline tags
    assert check_format("  \n" + GOOD + "\n\n", "math")  # surrounding whitespace is fine
    assert check_format(resp("Step 1: a\n\n   Step 2: b"), "math")  # blank and indented lines
    assert check_format(resp("Step 1. a\nStep 2. b"), "math")  # 'Step k.' as the prompt writes it


@pytest.mark.parametrize(
    "kind, n, ok",
    [("math", 4, True), ("math", 5, False), ("mcq", 4, True), ("mcq", 5, False),
     ("code", 6, True), ("code", 7, False)],
)
def test_step_limit_per_kind(kind, n, ok):
    steps = "\n".join(f"Step {k}: s" for k in range(1, n + 1))
    answer = CODE_ANSWER if kind == "code" else "\\boxed{4}"
    assert check_format(resp(steps, answer), kind) is ok


@pytest.mark.parametrize(
    "steps",
    [
        "Step 1: a\nStep 3: b",  # skipped number
        "Step 2: a\nStep 1: b",  # out of order
        "Step 2: a",  # does not start at 1
        "Step 1: a\nStep 1: b",  # repeated
        "Step 5: a",  # beyond the math limit even alone
    ],
)
def test_numbering_must_be_1_to_n_in_order(steps):
    assert not check_format(resp(steps), "math")


@pytest.mark.parametrize(
    "steps",
    [
        "1. a\n2. b",
        "(1) a\n(2) b",
        "- Step 1: a",
        "**Step 1:** a",
        "step 1: a",
        "Step 1: a\n1. b",
        "Step 1: a\nsome free text",  # every reasoning line carries a Step prefix
        "",  # no step at all
    ],
)
def test_other_numbering_or_unprefixed_lines_rejected(steps):
    assert not check_format(resp(steps), "math")


@pytest.mark.parametrize(
    "text",
    [
        "Step 1: a\n<answer>\\boxed{4}</answer>",  # missing think
        "<think>Step 1: a</think>",  # missing answer
        "<think>Step 1: a</think><answer>\\boxed{4}",  # unclosed answer
        "Sure! " + GOOD,  # text before the tags
        GOOD + " Hope this helps.",  # text after the tags
        "<think>Step 1: a</think> so <answer>\\boxed{4}</answer>",  # text between the tags
        "<answer>\\boxed{4}</answer><think>Step 1: a</think>",  # wrong order
        GOOD + GOOD,  # tags twice
        resp("Step 1: a", "4"),  # no boxed final answer
        resp("Step 1: a", "\\boxed{4"),  # unbalanced box
    ],
)
def test_layout_violations(text):
    assert not check_format(text, "math")


def test_code_answer_needs_a_python_block():
    assert check_format(resp("Step 1: write it", CODE_ANSWER), "code")
    assert not check_format(resp("Step 1: write it", "\\boxed{def f(): pass}"), "code")


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown task kind"):
        check_format(GOOD, "poetry")


# --- partial mode (the local part before a help trigger) -----------------------------------------

@pytest.mark.parametrize(
    "prefix",
    [
        "",  # help asked at once
        "  \n",
        "<think>\n",  # think opened, no step yet
        "<think>\nStep 1: set up.\nStep 2: stuck.\n",
        "<think>\nStep 1: set up.\nStep 2: too hard, ",  # trigger at the end of a step line
        "<think>Step 1: a</think>\n",  # think closed, answer not opened yet
        "<think>Step 1: a</think>\n<answer>Final answer: ",  # trigger inside the answer
    ],
)
def test_partial_accepts_prefixes_of_well_formed_responses(prefix):
    assert check_format(prefix, "math", partial=True)


@pytest.mark.parametrize(
    "prefix",
    [
        "Let me think. ",  # no think tag
        "<think>\n1. set up\n",  # other numbering
        "<think>\nStep 1: a\nStep 3: b\n",  # skipped
        "<think>\n" + "\n".join(f"Step {k}: s" for k in range(1, 6)) + "\n",  # 5 > 4 for math
        "<think>\nStep 1: a\nSo, ",  # the trigger's line is free text, not a step
        "<think></think>\n",  # closed think with no step
        "<think>Step 1: a</think> well <answer>",  # text between the tags
        "<think>Step 1: a\n<answer>",  # answer inside an open think
        "<think>Step 1: a</think><answer>4</answer>",  # closed answer without a box
    ],
)
def test_partial_rejects(prefix):
    assert not check_format(prefix, "math", partial=True)


def test_partial_uses_the_kind_limit():
    six = "<think>\n" + "\n".join(f"Step {k}: s" for k in range(1, 7)) + "\n"
    assert check_format(six, "code", partial=True)
    assert not check_format(six, "mcq", partial=True)


def test_full_mode_rejects_what_partial_accepts():
    assert not check_format("<think>\nStep 1: a\n", "math")
    assert not check_format("", "math")


# --- properties ---------------------------------------------------------------------------------

_balanced = st.recursive(
    st.text(alphabet="ab12+\\^ ", max_size=5),
    lambda inner: st.tuples(inner, inner).map(lambda p: f"{p[0]}{{{p[1]}}}"),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["math", "mcq", "code"]), st.booleans())
def test_check_format_never_raises(text, kind, partial):
    assert check_format(text, kind, partial=partial) in (True, False)


@settings(max_examples=150, deadline=None)
@given(_balanced, st.text(alphabet="xyz \n", max_size=20))
def test_last_boxed_returns_balanced_content(content, before):
    assert last_boxed(f"{before}\\boxed{{{content}}} tail") == content.strip()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(0, 4))
def test_every_line_prefix_of_a_good_response_is_partially_ok(n_steps, cut):
    steps = "\n".join(f"Step {k}: s{k}" for k in range(1, n_steps + 1))
    full = resp(steps)
    assert check_format(full, "math")
    lines = full.splitlines(keepends=True)
    prefix = "".join(lines[: 1 + min(cut, n_steps)])  # `<think>` line plus `cut` step lines
    assert check_format(prefix, "math", partial=True)
