"""The interface every cloud backend implements, and the errors the servicer maps to status codes."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import AsyncIterator
from typing import Protocol

from cloud_gateway.store.base import Completion


@dataclass(frozen=True)
class AssistInput:
    device: str
    task: str
    example_id: str
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    idempotency_key: str


class BackendInputError(Exception):
    """The request cannot be answered by this backend (e.g. unknown example): INVALID_ARGUMENT."""


class BackendUnavailable(Exception):
    """The cloud model failed or timed out after its retries: UNAVAILABLE."""


class CloudBackend(Protocol):
    name: str

    def validate(self, request: AssistInput) -> None:
        """Raise BackendInputError for a request this backend cannot answer (before metering)."""
        ...

    async def complete(self, request: AssistInput, timeout_s: float) -> Completion:
        """The cloud completion; must finish within `timeout_s` (the caller's remaining deadline)."""
        ...

    async def close(self) -> None: ...


class StreamingBackend(CloudBackend, Protocol):
    """A backend that can stream its completion (AssistStream); others answer in one delta."""

    def stream(self, request: AssistInput, timeout_s: float) -> AsyncIterator[str | Completion]:
        """Text deltas as the model produces them, then the whole `Completion` (their
        concatenation and its tokens); all within `timeout_s`."""
        ...
