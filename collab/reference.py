"""What the `reference` cloud backend answers for a built-in example.

The paper's cloud (DeepSeek-R1) solves ~97% of the questions; the reference backend stands in for it
on built-in tasks by writing the known solution in the paper's output format. `correct=False`
produces a well-formed but wrong answer (the backend draws it with probability 1 - accuracy).
The completion continues a local `<think>` block: composed with a local prefix by `compose`.
"""

from __future__ import annotations

from collab.prompts import CHOICE_LETTERS
from collab.tasks.base import Example


def wrong_answer(example: Example) -> str:
    """A deterministic wrong answer of the right shape."""
    if example.kind == "mcq":
        n = max(len(example.choices), 2)
        idx = CHOICE_LETTERS.index(example.answer) if example.answer in CHOICE_LETTERS else 0
        return CHOICE_LETTERS[(idx + 1) % n]
    try:
        return str(int(example.answer) + 1)
    except ValueError:
        return example.answer + "0" if example.answer else "0"


def reference_completion(example: Example, correct: bool = True) -> str:
    """The cloud completion text: reasoning steps, then the answer in the paper's format."""
    if example.kind == "code":
        code = example.solution if correct else (
            f"def {example.entry_point or 'solution'}(*args, **kwargs):\n    return None\n"
        )
        return (
            "Step 1: Write the function as specified.\n</think>\n<answer>\n```python\n"
            f"{code.rstrip()}\n```\n</answer>"
        )
    answer = example.answer if correct else wrong_answer(example)
    steps = [s.strip() for s in example.solution.splitlines() if s.strip()] if correct else []
    steps = steps[: example.step_limit] or ["Work out the answer."]
    body = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    return f"{body}\n</think>\n<answer>Final answer: \\boxed{{{answer}}}</answer>"
