"""Prompt templates, verbatim from the paper's appendix F.1.

Callers render `build_messages(...)` through the model's own chat template (transformers'
`apply_chat_template` in the trainer, llama.cpp's chat handler on the device).
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM_PROMPT = (
    "You are a helpful reasoning assistant for questioning, code, and math problems. When a "
    "question is posed, try to answer using step-by-step reasoning. Reason step by step, using "
    "format: Step 1: ..., Step 2: ..., Step 3: ..., etc. You must prefix each reasoning line with "
    "\u2018Step k.\u2019 exactly (e.g., \u2018Step 1:\u2019, \u2018Step 2:\u2019). Do not use other "
    "numbering formats such as \u20181.\u2019, \u2018(1)\u2019, or \u2018- Step 1\u2019. If the "
    "problem appears difficult or hard to solve, elaborate your reasoning with more detailed steps. "
    "Otherwise, use fewer steps as appropriate. Enclose your reasoning and answer within "
    "<think>...</think> and <answer>...</answer> tags, respectively. Always box the final answer "
    "using \\boxed{}, e.g., Final answer: \\boxed{42} (math), \\boxed{choice} (general QA), or "
    "Final answer: \\boxed{result} (coding or function output). If after sufficient reasoning "
    "steps you determine the problem cannot be solved locally, return: \u2018I need external "
    "assistance.\u2019"
)

CODE_TEMPLATE = (
    "Solve the programming task below in a Python markdown code block. "
    "Let\u2019s think step by step. {question}."
)
MATH_TEMPLATE = "{question}. Let\u2019s think step by step."
QA_TEMPLATE = "{question}. Let\u2019s think step by step. Possible answers: {choices}."

CHOICE_LETTERS = "ABCDEFGHIJ"


def format_choices(choices: Sequence[str]) -> str:
    """'A. first; B. second; ...' -- letters match what the multiple-choice grader accepts."""
    if len(choices) > len(CHOICE_LETTERS):
        raise ValueError(f"at most {len(CHOICE_LETTERS)} choices, got {len(choices)}")
    return "; ".join(f"{CHOICE_LETTERS[i]}. {c}" for i, c in enumerate(choices))


def user_prompt(kind: str, question: str, choices: Sequence[str] = ()) -> str:
    """The F.1 user prompt for a task kind: 'math', 'mcq' (QA with choices) or 'code'."""
    question = question.strip().rstrip(".")
    if kind == "math":
        return MATH_TEMPLATE.format(question=question)
    if kind == "code":
        return CODE_TEMPLATE.format(question=question)
    if kind == "mcq":
        if not choices:
            raise ValueError("a multiple-choice question needs choices")
        return QA_TEMPLATE.format(question=question, choices=format_choices(choices))
    raise ValueError(f"unknown task kind {kind!r}; expected 'math', 'mcq' or 'code'")


def build_messages(kind: str, question: str, choices: Sequence[str] = ()) -> list[dict[str, str]]:
    """System + user chat messages for one question."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(kind, question, choices)},
    ]
