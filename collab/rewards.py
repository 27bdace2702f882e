"""Reward r (paper eq. 13) and cost c (eq. 14) of a response; eq. 12 shapes them as r - lambda * c.

Ambiguities of the paper's text, and how we resolve them:

1. Eq. 13 says "-alpha_f if the answer doesn't follow the step by step format"; the prose below it
   says the penalty applies "if the answer is correct but violates the formatting". Eq. 12 (the
   lambda-shaped form in appendix B) lists the format case without any condition on correctness.
   We follow the equations: a format violation gives -alpha_f whether or not the answer is correct.
2. Eq. 14 charges alpha_c "if cloud assistance is requested and the step by step format is
   enforced": a help request with a format violation costs nothing (eq. 12: "ignoring any cloud
   request"). We follow that: cost = alpha_c only when help was requested and the format holds.
3. For a help-seeking response the format is judged on the *local part* (the text before the
   trigger, see `collab.extract.check_format(..., partial=True)`), because the cloud completion is
   not the device's output; correctness is judged on the composed response (F.2: "the task reward
   is always evaluated on the finalized composed response").

Shaped reward (eq. 12): r - lambda * c gives alpha_a (correct, local), alpha_a - lambda*alpha_c
(correct with cloud), -alpha_f (format violated), -lambda*alpha_c (cloud answered wrongly), 0 else.
"""

from __future__ import annotations

ALPHA_A = 1.0  # reward for a correct, well-formatted answer
ALPHA_F = 0.1  # penalty for a step-format violation
ALPHA_C = 1.0  # cost of one help request


def reward(correct: bool, format_ok: bool, alpha_a: float = ALPHA_A, alpha_f: float = ALPHA_F) -> float:
    """Eq. 13: alpha_a if correct and well formatted, -alpha_f if the format is violated, else 0."""
    if not format_ok:
        return -alpha_f
    return alpha_a if correct else 0.0


def cost(requested_help: bool, format_ok: bool, alpha_c: float = ALPHA_C) -> float:
    """Eq. 14: alpha_c if help was requested and the step format was respected, else 0."""
    return alpha_c if (requested_help and format_ok) else 0.0
