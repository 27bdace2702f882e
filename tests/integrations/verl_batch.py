"""A scripted verl-shaped batch: B=2 math prompts x G=4 responses, rows shuffled like balance_batch."""

from __future__ import annotations

from collab.tasks import get_task

HELP = "<think>\nStep 1: This looks hard.\nI need external assistance."
HELP_TAIL = HELP + " and then the model kept talking"  # text after the trigger is discarded
BROKEN_HELP = "Let me think. I need external assistance."  # no step format: not a help request
WRONG = "<think>\nStep 1: Guess.\n</think>\n<answer>Final answer: \\boxed{-12345}</answer>"


def right(ex) -> str:
    return f"<think>\nStep 1: Compute.\n</think>\n<answer>Final answer: \\boxed{{{ex.answer}}}</answer>"


def batch():
    """-> examples (B,), texts [[G]], and the flat verl rows (examples, texts, uids) in shuffled order."""
    examples = get_task("math").examples("train", n=2, seed=0)
    texts = [[HELP, WRONG, right(examples[0]), BROKEN_HELP], [WRONG, WRONG, HELP_TAIL, right(examples[1])]]
    order = [5, 0, 7, 2, 1, 6, 3, 4]  # a permutation of the 8 rows
    flat = [(examples[b], texts[b][i], f"uid-{b}") for b in range(2) for i in range(4)]
    rows = [flat[j] for j in order]
    return examples, texts, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], order
