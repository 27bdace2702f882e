"""The `reference` cloud: answers built-in examples from their known solution.

Correct with probability `accuracy` (default 0.97, the paper's cloud); the draw is seeded by
(seed, device, idempotency key) so a retry gets the same answer. Token counts are whitespace
words of the prompt and completion (an approximation: there is no tokenizer on this side).
"""

from __future__ import annotations

import asyncio
import functools
import random

from collab.reference import reference_completion
from cloud_gateway.backends.base import AssistInput, BackendInputError
from cloud_gateway.store.base import Completion


@functools.lru_cache(maxsize=4096)
def _task_example(example_id: str, task: str):
    """An example regenerated from its id (pure, ~50 us), remembered: each Assist looks it up twice."""
    from collab.tasks import get_task_example

    return get_task_example(example_id, task)


class ReferenceBackend:
    name = "reference"

    def __init__(self, accuracy: float = 0.97, latency_s: float = 0.0, seed: int = 0):
        self.accuracy, self.latency_s, self.seed = accuracy, latency_s, seed

    def validate(self, request: AssistInput) -> None:
        self._example(request)

    def _example(self, request: AssistInput):
        if not request.example_id:
            raise BackendInputError("the reference backend needs example_id (a built-in example)")
        try:
            return _task_example(request.example_id, request.task)
        except ValueError as exc:
            raise BackendInputError(str(exc)) from None

    async def complete(self, request: AssistInput, timeout_s: float) -> Completion:
        example = self._example(request)
        rng = random.Random(f"{self.seed}:{request.device}:{request.idempotency_key}")
        correct = rng.random() < self.accuracy
        if self.latency_s:
            await asyncio.sleep(min(self.latency_s, timeout_s))
        text = reference_completion(example, correct=correct)
        prompt_words = sum(len(content.split()) for _, content in request.messages)
        return Completion(text, prompt_words, len(text.split()), self.name)

    async def close(self) -> None:
        return None
