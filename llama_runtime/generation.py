"""What one local generation returns, and the error of a prompt that does not fit (no llama_cpp)."""

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


class ContextOverflow(ValueError):
    """The prompt (plus the requested new tokens) does not fit the model's context window."""
