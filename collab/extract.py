"""Answer extraction and the step-by-step format check (paper F.1, F.2; table 3).

What counts as a well-formed response (`check_format`), decided here once for every runtime:

1. Layout: `<think>BODY</think>` then `<answer>ANSWER</answer>`, each tag exactly once, nothing but
   whitespace before `<think>`, between `</think>` and `<answer>`, and after `</answer>`.
2. Every non-empty line of BODY is a reasoning line `Step k: ...` (leading whitespace ignored; the
   system prompt writes both 'Step k.' and 'Step 1:', so `Step k.` is accepted too). Anything
   else -- `1.`, `(1)`, `- Step 1`, `**Step 1:**`, a free-text line -- violates the format.
3. The steps are numbered 1, 2, ..., n in order, 1 <= n <= STEP_LIMITS[kind] (4 math, 6 code,
   4 mcq). Skipped, repeated or out-of-order numbers violate the format: the paper counts steps as
   the model's self-declared reasoning effort, and a count that does not match the labels is not one.
4. ANSWER carries the final answer: a balanced `\\boxed{...}` (math, mcq) or a Python markdown
   block (code).
5. At most MAX_COMPLETION_CHARS characters: a longer text has no answer and no format (a
   completion comes from a model or over the network; every function here is linear in it, and
   the cap bounds that too).

Partial mode judges the local text *before* a help trigger (the cloud writes the rest). It is
well formed when it is a prefix of some well-formed response, cut at a line boundary inside the
reasoning: empty or whitespace (help asked at once), `<think>` followed by complete step lines
obeying rules 2-3 (possibly none yet), or a complete think block followed by an opened answer. The line on which the
trigger sits counts as a line: text before the trigger on it must itself be a `Step k:` line.
"""

from __future__ import annotations

import re

from collab.tasks.base import STEP_LIMITS

# `\boxed{` with optional spaces before the brace (`\boxed {x}` is valid LaTeX and is accepted).
_BOXED = re.compile(r"\\boxed\s*\{")
MAX_COMPLETION_CHARS = 1 << 18  # 256 Ki characters: far above any step-limited answer
# The language tag after an opening fence: ```python / ```py / ```python3 / bare ```.
_FENCE_TAG = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
_FENCE = "```"
_PYTHON_TAGS = {"", "python", "python3", "py"}
_STEP = re.compile(r"Step (\d+)[:.]")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, nested braces included; None if absent or unbalanced.

    Only the last occurrence is considered: if it is unbalanced the answer is malformed (None),
    even when an earlier box is balanced.
    """
    if len(text) > MAX_COMPLETION_CHARS:
        return None
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()  # index just after the opening brace
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def think_answer(text: str) -> tuple[str | None, str | None]:
    """(content of the first `<think>` block, content of the first `<answer>` block after it).

    Either is None when its opening or closing tag is missing. Content is returned unstripped.
    """
    think = _between(text, "<think>", "</think>")
    after = text.find("</think>") + len("</think>") if think is not None else 0
    answer = _between(text[after:], "<answer>", "</answer>")
    return think, answer


def code_block(text: str) -> str | None:
    """Body of the last fenced Python block (```python, ```py, ```python3 or untagged); else None.

    Blocks tagged with another language are ignored; an unclosed fence is not a block.
    """
    if len(text) > MAX_COMPLETION_CHARS:
        return None
    bodies = [body for tag, body in _fenced_blocks(text) if tag.lower() in _PYTHON_TAGS]
    return bodies[-1] if bodies else None


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, body) of each block, left to right, in one pass (each find starts past the last).

    A block opens at a fence, takes the tag after it (rest of that line ignored), and its body
    runs from the next line to the first fence after it. The same blocks as the regex
    ```` ```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)``` ```` (DOTALL), which is quadratic on
    backtick runs without a closing fence.
    """
    blocks = []
    pos = 0
    while (start := text.find(_FENCE, pos)) >= 0:
        newline = text.find("\n", start + len(_FENCE))
        if newline < 0:
            break  # no later fence has a line after it either
        close = text.find(_FENCE, newline + 1)
        if close < 0:
            break  # every later fence lies before this newline: none is closed
        tag = _FENCE_TAG.match(text, start + len(_FENCE), newline).group(1)
        blocks.append((tag, text[newline + 1 : close]))
        pos = close + len(_FENCE)
    return blocks


def check_format(text: str, kind: str, partial: bool = False) -> bool:
    """The step-by-step format of the module docstring; `partial` judges a pre-trigger prefix."""
    if kind not in STEP_LIMITS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {sorted(STEP_LIMITS)}")
    if len(text) > MAX_COMPLETION_CHARS:
        return False
    return _check_partial(text, kind) if partial else _check_full(text, kind)


def _check_full(text: str, kind: str) -> bool:
    if any(text.count(tag) != 1 for tag in _TAGS):
        return False
    match = re.fullmatch(r"\s*<think>(.*)</think>\s*<answer>(.*)</answer>\s*", text, re.DOTALL)
    if match is None:
        return False
    body, answer = match.groups()
    return _steps_ok(body.splitlines(), STEP_LIMITS[kind]) and _has_final_answer(answer, kind)


def _check_partial(text: str, kind: str) -> bool:
    rest = text.lstrip()
    if not rest:
        return True
    if not rest.startswith("<think>") or any(text.count(tag) > 1 for tag in _TAGS):
        return False
    body, closed, after = rest[len("<think>"):].partition("</think>")
    # An open think block may hold no step yet (the cloud writes them); a closed one needs one.
    if not _steps_ok(body.splitlines(), STEP_LIMITS[kind], min_steps=1 if closed else 0):
        return False
    if not closed:
        return "<answer>" not in body and "</answer>" not in body
    return _answer_prefix_ok(after, kind)


def _answer_prefix_ok(after: str, kind: str) -> bool:
    """After `</think>`: whitespace, then optionally an answer that is opened (or fully closed)."""
    after = after.lstrip()
    if not after:
        return True
    if not after.startswith("<answer>"):
        return False
    answer, closed, tail = after[len("<answer>"):].partition("</answer>")
    if not closed:
        return True  # the cloud completes an opened answer
    return not tail.strip() and _has_final_answer(answer, kind)


def _steps_ok(lines: list[str], limit: int, min_steps: int = 1) -> bool:
    """Rules 2-3: every non-empty line is `Step k:`, numbered 1..n in order, min <= n <= limit."""
    numbers = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        step = _STEP.match(line)
        if step is None:
            return False
        numbers.append(int(step.group(1)))
    return min_steps <= len(numbers) <= limit and numbers == list(range(1, len(numbers) + 1))


def _has_final_answer(answer: str, kind: str) -> bool:
    if kind == "code":
        return code_block(answer) is not None
    return last_boxed(answer) is not None


def _between(text: str, open_tag: str, close_tag: str) -> str | None:
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    return None if end < 0 else text[start:end]
