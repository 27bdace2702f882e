"""The answer flow of `edge_agent.service`, streamed: local tokens as they are decoded, then the
cloud's completion as the gateway streams it (AssistStream).

One streamed answer yields `Delta`s and ends with one `Finished` carrying the same `Answer` as
`EdgeService.answer`, with these differences:

1. The user never sees the help trigger: text that could still become the trigger is held back
   (`visible_len`) and dropped once it does; the cloud's deltas take its place, so the streamed
   text is C(local, cloud) without the trigger (a fallback: the local part alone).
2. With the help knob on, the local tokens come from the knob's decoder (`LocalModel.stream_knob`)
   at the task's bias, so a streamed answer asks under the same rule and gives the same tokens as
   `EdgeService.answer` (the fallback's re-answer with the trigger banned is not streamed: the
   local part has been shown already).
3. The cloud part comes from `CloudClient.assist_stream` (same key, group_help and report_key as
   Assist). A refusal or an unreachable gateway ends the stream with route `fallback` and the
   reason; a stream that breaks after its first delta ends with reason `interrupted` (the gateway
   saw and counted that help request, so it is not reported offline).
4. A consumer that goes away (`aclose()`, cancellation) stops local decoding at the next token
   and cancels the cloud stream. Usage is counted once: an answer cut during local decoding was
   never a response and reaches no report (the gateway saw nothing of it); one cut during the
   cloud part is recorded like a finished one, reason `interrupted`.

Errors before the first event (unknown task, prompt too long, queue full) raise, so the HTTP layer
can still answer them with a status code.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from collab.cloud import CloudRefused, CloudReply, CloudUnavailable
from collab.help import is_help_request
from collab.prompts import build_messages
from collab.protocol import HELP_TRIGGER, split_at_trigger
from edge_agent.service import Answer, EdgeService, Question, extract_answer, make_example, task_kind
from llama_runtime.generation import Generation

log = logging.getLogger("edge_agent")


@dataclass(frozen=True)
class Started:
    """The prompt fits and decoding has begun (the first event of every stream)."""


@dataclass(frozen=True)
class Delta:
    text: str
    source: str  # "local" | "cloud"


@dataclass(frozen=True)
class Finished:
    answer: Answer
    shown: str  # everything the Deltas carried: the answer as the user saw it


Event = Started | Delta | Finished


def visible_len(text: str, trigger: str = HELP_TRIGGER) -> int:
    """How many leading characters of decoded `text` may be shown: all before the trigger, less
    a tail that could still grow into it ("... I ne" shows "... ")."""
    i = text.find(trigger)
    if i >= 0:
        return i
    for k in range(min(len(trigger) - 1, len(text)), 0, -1):
        if text.endswith(trigger[:k]):
            return len(text) - k
    return len(text)


class _End:
    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error


class _Bridge:
    """Items of a generator run on another thread, delivered to the event loop in order.

    `stop` asks the producer to close its generator before its next item."""

    _STARTED = object()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.queue, self.stop = loop, asyncio.Queue(), threading.Event()

    def _put(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is closed: nobody waits for this item
            self.stop.set()

    def run(self, make: Callable[[], Iterator]) -> None:
        """On the producer thread: build the generator, pump it, end with its return value."""
        try:
            gen = make()
        except BaseException as exc:  # delivered to the consumer, which raises it
            self._put(_End(error=exc))
            return
        try:
            self._put(self._STARTED)
            while not self.stop.is_set():
                try:
                    item = next(gen)
                except StopIteration as done:
                    self._put(_End(done.value))
                    return
                self._put(item)
            self._put(_End())
        except BaseException as exc:
            self._put(_End(error=exc))
        finally:
            gen.close()  # stops decoding (or cancels the gRPC stream) when stopped early

    async def items(self) -> AsyncIterator[Any]:
        """Yields `Started` once the generator exists, then its items; `self.result` is its return."""
        while True:
            item = await self.queue.get()
            if item is self._STARTED:
                yield Started()
            elif isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                self.result = item.value
                return
            else:
                yield item


async def answer_stream(service: EdgeService, q: Question) -> AsyncIterator[Event]:
    start = time.perf_counter()
    kind = task_kind(q)
    key = uuid.uuid4().hex
    example = make_example(q, kind, key)
    messages = build_messages(kind, q.question, q.choices)
    loop = asyncio.get_running_loop()
    local, cloud = _Bridge(loop), _Bridge(loop)
    knob: dict[str, float | None] = {}  # the bias the decode started with (read on the model thread)
    job = service.worker.submit(lambda m: local.run(lambda: _local_stream(m, messages, q, service, knob)))
    service.metrics.queue_depth.set(service.worker.depth)
    batch = service.outbox.begin(q.task)
    gen: Generation | None = None
    shown, reply, reason, help_request = "", None, "not_requested", False
    try:
        decoded = ""
        async for item in local.items():
            if isinstance(item, Started):
                yield item
                continue
            decoded += item
            n = visible_len(decoded)
            if n > len(shown):
                yield Delta(decoded[len(shown):n], "local")
                shown = decoded[:n]
        gen, bias = local.result, knob.get("bias")
        if bias is not None:
            gen, score = gen
            service.note_knob(q.task, bias, score)
        local_part, _ = split_at_trigger(gen.text)
        if len(local_part) > len(shown):  # a held-back tail that did not become the trigger
            yield Delta(local_part[len(shown):], "local")
            shown = local_part
        help_request = is_help_request(gen.text, kind)
        if gen.asked_help:
            reason = "disabled"
            if q.allow_cloud and service.cloud is not None:
                reason = "unavailable"
                loop.run_in_executor(None, cloud.run, lambda: service.cloud.assist_stream(
                    example, messages, idempotency_key=key, group_help=int(help_request),
                    group_size=1, report_key=batch))
                async for event in _cloud_deltas(cloud, q.task):
                    if isinstance(event, str):
                        reason = "interrupted"  # until the whole reply arrives
                        shown += event
                        yield Delta(event, "cloud")
                    elif isinstance(event, CloudReply):
                        reply, reason = event, "served"
                        service._note_telemetry(q.task, event.telemetry)
                    else:
                        reason = event.reason if reason == "unavailable" else reason
                        service._note_telemetry(q.task, event.telemetry)
    except BaseException:
        local.stop.set()
        job.cancel()
        cloud.stop.set()
        if gen is None:  # cut (or failed) before the local response was whole: not a response
            service.outbox.cancel(batch)
        else:
            _record(service, q, gen, reply, reason, help_request, batch)
        raise
    route = _record(service, q, gen, reply, reason, help_request, batch)
    t = service.telemetry.get(q.task)
    answer = Answer(
        help_bias=bias, task=q.task, route=route, answer=extract_answer(kind, shown), text=shown,
        local_part=local_part, cloud_part=reply.completion if reply else None,
        requested_help=gen.asked_help, cloud_used=reply is not None,
        cloud_skipped_reason=None if reply else reason, telemetry=asdict(t) if t else None,
        prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
        cloud_prompt_tokens=reply.prompt_tokens if reply else 0,
        cloud_completion_tokens=reply.completion_tokens if reply else 0,
        finish_reason=gen.finish_reason, latency_s=time.perf_counter() - start)
    service.metrics.latency.labels(route).observe(answer.latency_s)
    yield Finished(answer, shown)


def _local_stream(model, messages: list[dict[str, str]], q: Question, service: EdgeService, knob: dict):
    """The local tokens, plain or with the help knob at the task's bias as it stands when the decode
    starts (then it returns (gen, score)); `knob["bias"]` says which."""
    bias = knob["bias"] = service.knob_bias(q)
    if bias is None:
        return model.stream(messages, max_tokens=q.max_tokens, temperature=q.temperature, seed=q.seed)
    return model.stream_knob(messages, max_tokens=q.max_tokens, help_bias=bias, temperature=q.temperature,
                             seed=q.seed)


@dataclass(frozen=True)
class _Skipped:
    reason: str
    telemetry: Any = None


async def _cloud_deltas(cloud: _Bridge, task: str) -> AsyncIterator[str | CloudReply | _Skipped]:
    """The cloud stream's deltas, then its reply, or `_Skipped` when it ends without one."""
    try:
        async for item in cloud.items():
            if not isinstance(item, Started):
                yield item
        return
    except CloudRefused as exc:
        log.info("cloud refused %s: %s", task, exc)
        yield _Skipped("budget_exhausted", exc.telemetry)
        return
    except CloudUnavailable as exc:
        log.warning("cloud unavailable, answering locally: %s", exc)
    except Exception:  # e.g. a rejected API key: misconfiguration, logged loudly, not a 500
        log.exception("cloud stream failed, answering locally")
    yield _Skipped("unavailable")


def _record(service: EdgeService, q: Question, gen: Generation, reply: CloudReply | None,
            reason: str, help_request: bool, batch: str) -> str:
    """Queue the usage of one response and count it in the metrics; returns its route."""
    route = "local" if not gen.asked_help else ("cloud" if reply else "fallback")
    service._record(q.task, route, gen, reason, help_request, batch)
    return route
