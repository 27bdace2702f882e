"""What counts as one help request: paper eq. 14's cost, the one definition every count uses.

A response is a *help request* when it contains the trigger and its local part (the text before
the trigger) respects the step-by-step format (`collab.extract.check_format(..., partial=True)`).
A trigger after a broken format is not one: eq. 14 charges it nothing (eq. 12: "ignoring any
cloud request"), and its reward is -alpha_f whatever the cloud would answer.

The trainer's batch report and the `group_help` of its Assist calls, the edge agent's reports and
the gateway's counters all count this, so the ratio lambda regulates is one quantity everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from collab.extract import check_format
from collab.protocol import split_at_trigger


def is_help_request(text: str, kind: str) -> bool:
    """True when `text` asks for help with a well-formatted local part (eq. 14: cost alpha_c)."""
    local, asked = split_at_trigger(text)
    return asked and check_format(local, kind, partial=True)


def count_help(texts: Iterable[str], kind: str) -> int:
    """Help requests among a group's responses: the `group_help` of its Assist."""
    return sum(is_help_request(t, kind) for t in texts)
