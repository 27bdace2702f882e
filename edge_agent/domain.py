"""Domain types of the edge agent shared by the model, the service and the API (no llama_cpp)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    """One local response."""

    text: str  # the local response; when `asked_help`, it ends right after the trigger
    asked_help: bool
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS), "length" (max_tokens) or "help" (the trigger)


class InvalidQuestion(ValueError):
    """The request cannot be answered as asked (unknown task, choices that do not fit, ...)."""


class ContextOverflow(ValueError):
    """The prompt (plus the requested new tokens) does not fit the model's context window."""
