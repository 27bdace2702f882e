"""Domain errors of the edge agent shared by the service and the API (no llama_cpp)."""

from __future__ import annotations


class InvalidQuestion(ValueError):
    """The request cannot be answered as asked (unknown task, choices that do not fit, ...)."""
