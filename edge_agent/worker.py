"""One thread owns the model; jobs reach it through a bounded FIFO queue.

A llama.cpp context is not thread-safe, so every use of the model (generation, tokenization,
adapter swap) is a job `fn(model)` run on this one thread, in arrival order (first come, first
served: no request can overtake another). `submit` raises `QueueFull` when `max_queue` jobs are
already waiting; the REST layer turns that into 503 + Retry-After. Control jobs (adapter swaps)
are never refused and never counted against the limit; they run between two requests, so a swap
cannot fail a request in flight.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

M = TypeVar("M")


class QueueFull(Exception):
    def __init__(self, depth: int, retry_after_s: int):
        super().__init__(f"{depth} requests are already waiting for the model")
        self.retry_after_s = retry_after_s


class ModelWorker(Generic[M]):
    def __init__(self, model: M, max_queue: int):
        self.model = model
        self.max_queue = max_queue
        self._jobs: collections.deque[tuple[Callable[[M], Any], Future, bool]] = collections.deque()
        self._cv = threading.Condition()
        self._waiting_requests = 0
        self._job_s = 1.0  # running mean of a request's service time, for Retry-After
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="edge-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the one running)."""
        return self._waiting_requests

    def submit(self, fn: Callable[[M], Any], *, control: bool = False) -> Future:
        fut: Future = Future()
        with self._cv:
            if self._stopping:
                raise RuntimeError("the model worker is stopped")
            if not control and self._waiting_requests >= self.max_queue:
                wait = math.ceil(self._job_s * (self._waiting_requests + 1))
                raise QueueFull(self._waiting_requests, max(1, wait))
            self._jobs.append((fn, fut, control))
            self._waiting_requests += not control
            self._cv.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._stopping:
                    self._cv.wait()
                if not self._jobs:
                    return
                fn, fut, control = self._jobs.popleft()
                self._waiting_requests -= not control
            if not fut.set_running_or_notify_cancel():
                continue
            start = time.perf_counter()
            try:
                fut.set_result(fn(self.model))
            except BaseException as exc:  # delivered to the caller, never kills the worker
                fut.set_exception(exc)
            if not control:
                self._job_s = 0.8 * self._job_s + 0.2 * (time.perf_counter() - start)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, then end the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)
