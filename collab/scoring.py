"""Score one response: requests help? -> compose -> extract -> grade -> reward r, cost c.

The single place that turns a device response (plus the cloud completion, if any) into the paper's
reward and cost; the trainer, the evaluator, the edge agent and `dagrpo grade` all call `score`.

- Help is requested when the local text contains the trigger; everything after it is discarded.
  It is a *help request* (what every count uses, `collab.help`) when the local part also respects
  the format: exactly when eq. 14's cost is alpha_c.
- Format: a help-seeking response is judged on its local part before the trigger
  (`check_format(..., partial=True)`), any other response on its whole text (collab/rewards.py, 3).
- Correctness: judged on the composed response C(local, cloud) (paper F.2). The answer is the last
  `\\boxed{}` of the composed text (math, mcq) or its last Python block (code), so the cloud's
  answer wins over anything the local part boxed before the trigger.
- A help request without a cloud completion (no cloud, or the gateway refused) is graded on the
  local text as it is; eq. 14 still charges its cost, because cost measures the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collab.extract import check_format, code_block, last_boxed
from collab.grading import MathGrader, grade_code, grade_math, grade_mcq
from collab.protocol import compose, split_at_trigger
from collab.rewards import cost, reward
from collab.tasks.base import Example

if TYPE_CHECKING:
    from collab.sandbox import SandboxLimits


@dataclass(frozen=True)
class Scored:
    reward: float  # r, eq. 13
    cost: float  # c, eq. 14
    correct: bool  # the composed response's answer is right (independent of format)
    format_ok: bool  # step-by-step format (local part only when help was requested)
    requests_help: bool  # the trigger occurred (format aside)
    help_request: bool  # eq. 14: a help request (collab.help): trigger and a well-formatted local part
    composed: str  # the response that was graded: C(local, cloud), or the local text
    local_part: str  # the local text before the trigger (all of it without a trigger)
    extracted: str | None  # boxed answer (math, mcq) or program (code) of `composed`


def score(
    example: Example,
    local_text: str,
    cloud_text: str | None = None,
    *,
    math_grader: MathGrader = "exact",
    sandbox_limits: SandboxLimits | None = None,
) -> Scored:
    """Reward and cost of one local response (and the cloud completion when help was asked)."""
    local_part, asked = split_at_trigger(local_text)
    format_ok = check_format(local_part, example.kind, partial=True) if asked else check_format(
        local_text, example.kind
    )
    composed = compose(local_text, cloud_text) if asked and cloud_text is not None else local_text
    extracted = code_block(composed) if example.kind == "code" else last_boxed(composed)
    correct = is_correct(example, extracted, math_grader=math_grader, sandbox_limits=sandbox_limits)
    return Scored(
        reward=reward(correct, format_ok),
        cost=cost(asked, format_ok),
        correct=correct,
        format_ok=format_ok,
        requests_help=asked,
        help_request=asked and format_ok,
        composed=composed,
        local_part=local_part,
        extracted=extracted,
    )


def is_correct(
    example: Example,
    extracted: str | None,
    *,
    math_grader: MathGrader = "exact",
    sandbox_limits: SandboxLimits | None = None,
) -> bool:
    """Dispatch to the grader of the example's kind."""
    if example.kind == "math":
        return grade_math(extracted, example.answer, math_grader)
    if example.kind == "mcq":
        return grade_mcq(extracted, example.answer, example.choices)
    result = grade_code(extracted, example, sandbox_limits)
    return result is not None and result.passed
