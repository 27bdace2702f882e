"""The edge agent's answer flow, independent of HTTP.

One answer:
1. Render the paper's F.1 messages for the task kind; on the model thread, decode locally until
   EOS, max_tokens or the help trigger (`llama_runtime.llm`).
2. No trigger: route `local`. Trigger: unless the request or the agent disables the cloud
   (`disabled`), call Assist with a fresh idempotency key (the gRPC client retries with the same
   key), then compose C(local, cloud): route `cloud`. A refusal (`budget_exhausted`) or an
   unreachable gateway (`unavailable`) gives route `fallback`: the local response as it stands,
   flagged, never an error. A help request answered locally because the cloud was unreachable
   or disabled is reported as offline (`offline_help`): the gateway never saw it and counts it
   once from the report; a refused one it saw (and counted) itself.
3. Extract the final answer from the composed text (`\\boxed{}`; code: the Python block).
4. Queue a usage report (responses=1, help_requests=1 iff the response is a help request in the
   sense of eq. 14, `collab.help`: the trigger after a well-formatted local part, whatever the
   cloud did) in the durable outbox; a background loop delivers it. A trigger after a broken
   format still gets the cloud's answer (the user asked), but is no help request: its Assist says
   `group_help = 0`, and the gateway counts it as the device does.

Adapter swaps run as control jobs on the model thread, between two requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from collab.cloud import CloudClient, CloudRefused, CloudUnavailable, Telemetry
from collab.extract import code_block, last_boxed
from collab.help import is_help_request
from collab.prompts import build_messages
from collab.protocol import compose, split_at_trigger
from collab.tasks import get_task, get_task_example
from collab.tasks.base import Example
from edge_agent.domain import InvalidQuestion
from edge_agent.knob import HelpKnobs
from edge_agent.metrics import EdgeMetrics
from edge_agent.outbox import UsageOutbox
from edge_agent.worker import ModelWorker
from llama_runtime.export import export_adapter, find_adapter_dir

log = logging.getLogger("edge_agent")
OFFLINE = ("disabled", "unavailable")  # fallback reasons whose Assist never reached the gateway


@dataclass(frozen=True)
class Question:
    task: str
    question: str
    choices: tuple[str, ...] = ()
    max_tokens: int = 512
    allow_cloud: bool = True
    temperature: float = 0.0
    seed: int | None = None
    example_id: str | None = None
    max_help_share: float | None = None  # lowers this request's help target (the knob), never raises it


@dataclass(frozen=True)
class Answer:
    task: str
    route: str  # "local" | "cloud" | "fallback"
    answer: str | None  # the extracted final answer
    text: str  # the full (composed) response
    local_part: str  # local text before the trigger (all of it when no trigger)
    cloud_part: str | None
    requested_help: bool
    cloud_used: bool
    cloud_skipped_reason: str | None  # not_requested | disabled | budget_exhausted | unavailable
    telemetry: dict | None
    prompt_tokens: int
    completion_tokens: int
    cloud_prompt_tokens: int
    cloud_completion_tokens: int
    finish_reason: str
    latency_s: float
    help_bias: float | None = None  # the knob's bias for this answer (None: the knob is off)
    reanswered: bool = False  # fallback: `text`/`answer` are a second, never-asking local decode


def extract_answer(kind: str, text: str) -> str | None:
    return code_block(text) if kind == "code" else last_boxed(text)


def make_example(q: Question, kind: str, key: str) -> Example:
    """The Example the cloud sees: a built-in one when named (the reference backend needs it)."""
    if q.example_id is None:
        return Example(id=f"edge/{key}", task=q.task, kind=kind, question=q.question,
                       choices=q.choices)
    try:
        return get_task_example(q.example_id, q.task)
    except ValueError as exc:
        raise InvalidQuestion(str(exc)) from None


def task_kind(q: Question) -> str:
    try:
        kind = get_task(q.task).kind
    except (KeyError, ValueError) as exc:
        raise InvalidQuestion(exc.args[0] if exc.args else f"unknown task {q.task!r}") from None
    if kind == "mcq" and not q.choices:
        raise InvalidQuestion(f"task {q.task!r} is multiple choice: give 'choices'")
    if kind != "mcq" and q.choices:
        raise InvalidQuestion(f"task {q.task!r} is not multiple choice: 'choices' must be empty")
    return kind


class EdgeService:
    def __init__(self, worker: ModelWorker, cloud: CloudClient | None, outbox: UsageOutbox,
                 metrics: EdgeMetrics, base_model_path: str, *, knobs: HelpKnobs | None = None,
                 reanswer: bool = False):
        self.knobs = knobs  # the help knob per task (edge_agent/knob.py), or None: plain decoding
        self.reanswer = reanswer
        self.worker = worker
        self.cloud = cloud
        self.outbox = outbox
        self.metrics = metrics
        self.base_model_path = base_model_path
        self.telemetry: dict[str, Telemetry] = {}  # task -> latest telemetry from the gateway
        self._counts: dict[str, list[int]] = {}  # task -> [answers, help requests] since start
        self.adapter: dict | None = None  # what /v1/adapter reports about the loaded adapter

    # -- answering ------------------------------------------------------------------------

    async def answer(self, q: Question) -> Answer:
        start = time.perf_counter()
        kind = task_kind(q)
        key = uuid.uuid4().hex
        example = make_example(q, kind, key)
        messages = build_messages(kind, q.question, q.choices)
        batch = self.outbox.begin(q.task)  # the report this answer's usage (and Assist) belongs to
        try:
            gen, bias = await self._generate(messages, q)
            help_request = is_help_request(gen.text, kind)
            reply, reason = None, "not_requested"
            if gen.asked_help:
                reply, reason = await self._ask_cloud(q, example, messages, key, help_request, batch)
            # The cloud cannot help: the device's best local answer, decoded with the trigger banned.
            second = ((await self._generate(messages, q, fixed_bias=-math.inf))[0]
                      if gen.asked_help and reply is None and self.reanswer else None)
        except BaseException:
            self.outbox.cancel(batch)
            raise
        local_part, _ = split_at_trigger(gen.text)
        text = compose(gen.text, reply.completion) if reply else (second.text if second else gen.text)
        route = "local" if not gen.asked_help else ("cloud" if reply else "fallback")
        self._record(q.task, route, gen, reason, help_request, batch)
        t = self.telemetry.get(q.task)
        return Answer(
            help_bias=bias, reanswered=second is not None,
            task=q.task, route=route, answer=extract_answer(kind, text), text=text,
            local_part=local_part, cloud_part=reply.completion if reply else None,
            requested_help=gen.asked_help, cloud_used=reply is not None,
            cloud_skipped_reason=None if reply else reason,
            telemetry=asdict(t) if t else None,
            prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
            cloud_prompt_tokens=reply.prompt_tokens if reply else 0,
            cloud_completion_tokens=reply.completion_tokens if reply else 0,
            finish_reason=gen.finish_reason, latency_s=time.perf_counter() - start,
        )

    async def _generate(self, messages, q: Question, fixed_bias: float | None = None):
        """One local decode on the model thread -> (Generation, the help bias it used; None: plain).

        Plain when the knob is off; else with the task's help bias as it stands when the decode
        starts (read on the model thread, so a request that waited in the queue does not decode
        with the bias of the moment it arrived), or `fixed_bias` (the re-answer's -inf)."""
        knob = fixed_bias is not None or self.knobs is not None

        def run(m):
            if not knob:
                return m.generate(messages, max_tokens=q.max_tokens, temperature=q.temperature, seed=q.seed), None, None
            bias = fixed_bias if fixed_bias is not None else self.knob_bias(q)
            gen, score = m.generate_knob(messages, max_tokens=q.max_tokens, help_bias=bias,
                                         temperature=q.temperature, seed=q.seed)
            return gen, bias, score

        job = self.worker.submit(run)
        self.metrics.queue_depth.set(self.worker.depth)
        gen, bias, score = await asyncio.wrap_future(job)
        self.metrics.queue_depth.set(self.worker.depth)
        if bias is not None:
            self.note_knob(q.task, bias, score)
        return gen, bias

    def knob_bias(self, q: Question) -> float | None:
        """The help bias of the task's next answer (None: the knob is off)."""
        return self.knobs.bias(q.task, q.max_help_share) if self.knobs else None

    def note_knob(self, task: str, bias: float, score: float) -> None:
        """After a decode with the knob at `bias`: its ask score joins the task's window (a
        never-asking re-decode's, at -inf, says nothing about the policy's wish to ask)."""
        if math.isfinite(bias) and self.knobs is not None:
            self.knobs.observe_score(task, score)
            self.metrics.help_bias.labels(task).set(bias)

    async def _ask_cloud(self, q: Question, example: Example, messages: list[dict[str, str]],
                         key: str, help_request: bool, batch: str):
        """(CloudReply or None, reason it is None)."""
        if not q.allow_cloud or self.cloud is None:
            return None, "disabled"
        try:
            reply = await asyncio.to_thread(
                self.cloud.assist, example, messages, idempotency_key=key,
                group_help=int(help_request), group_size=1, report_key=batch)
        except CloudRefused as exc:
            self._note_telemetry(q.task, exc.telemetry)
            log.info("cloud refused %s: %s", q.task, exc)
            return None, "budget_exhausted"
        except CloudUnavailable as exc:
            log.warning("cloud unavailable, answering locally: %s", exc)
            return None, "unavailable"
        except Exception:  # e.g. a rejected API key: misconfiguration, logged loudly, not a 500
            log.exception("cloud call failed, answering locally")
            return None, "unavailable"
        self._note_telemetry(q.task, reply.telemetry)
        return reply, "served"

    def _record(self, task: str, route: str, gen, reason: str, help_request: bool, batch: str) -> None:
        offline = help_request and reason in OFFLINE  # the gateway never saw this help request
        self.outbox.add(task, 1, int(help_request), int(offline), batch=batch)
        m = self.metrics
        m.answers.labels(task, route).inc()
        m.generated_tokens.labels(task).inc(gen.completion_tokens)
        counts = self._counts.setdefault(task, [0, 0])
        counts[0] += 1
        if help_request:
            counts[1] += 1
            m.help_requests.labels(task).inc()
        if route == "fallback":
            m.cloud_skipped.labels(task, reason).inc()
        m.ratio.labels(task, "local").set(counts[1] / counts[0])
        m.usage_pending.set(self.outbox.pending())

    def _note_telemetry(self, task: str, t: Telemetry | None) -> None:
        if t is not None:
            self.telemetry[task] = t
            self.metrics.ratio.labels(task, "gateway").set(t.window_ratio)
            if self.knobs is not None:
                self.knobs.on_telemetry(task, t)

    def budget(self) -> dict:
        """GET /v1/budget: per task the tau in force, the gateway's ratio, the device's, the knob."""
        tasks = set(self.telemetry) | set(self._counts) | set(self.knobs.snapshot() if self.knobs else ())
        knob = self.knobs.snapshot() if self.knobs else {}
        out = {}
        for task in sorted(tasks):
            t, c = self.telemetry.get(task), self._counts.get(task, [0, 0])
            out[task] = {"tau": t.tau if t else None, "gateway_window_ratio": t.window_ratio if t else None,
                         "answers": c[0], "help_requests": c[1], "device_ratio": c[1] / c[0] if c[0] else None,
                         "knob": knob.get(task)}
        return {"help_knob": self.knobs is not None, "tasks": out}

    # -- usage ----------------------------------------------------------------------------

    def flush_usage(self) -> int:
        """Deliver queued usage now (blocking); returns the rows still pending."""
        if self.cloud is None:
            return self.outbox.pending()
        result = self.outbox.flush(self.cloud)
        for task, t in result.telemetry.items():
            self._note_telemetry(task, t)
        self.metrics.usage_pending.set(result.pending_rows)
        return result.pending_rows

    async def flush_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.flush_usage)
            except Exception:  # a flush bug must not stop future flushes; rows stay queued
                log.exception("usage flush failed")

    # -- adapters -------------------------------------------------------------------------

    async def load_adapter(self, path: str | None) -> dict:
        """Load a GGUF LoRA, or export a peft adapter / run dir first; None unloads.

        Runs between two requests on the model thread: nothing in flight fails.
        """
        gguf_path, lam = (None, None) if path is None else await asyncio.to_thread(
            resolve_adapter, path, self.base_model_path)
        start = time.perf_counter()
        await asyncio.wrap_future(self.worker.submit(lambda m: m.set_adapter(gguf_path),
                                                     control=True))
        self.adapter = {"path": gguf_path, "source": path, "lambda": lam,
                        "swap_s": time.perf_counter() - start}
        if lam is not None:
            self.metrics.lam.set(lam)
        self.metrics.adapter_swaps.inc()
        return self.adapter


def resolve_adapter(path: str, base_model_path: str) -> tuple[str, float | None]:
    """(GGUF LoRA path, lambda of the training run or None) for a .gguf, peft dir or run dir."""
    p = Path(path)
    if p.is_file():
        return str(p), None
    if not p.exists():
        raise FileNotFoundError(f"adapter {path!r} does not exist")
    adapter_dir = find_adapter_dir(p)
    out = export_adapter(adapter_dir, base_model_path, adapter_dir / "adapter.gguf")
    state = adapter_dir.parent / "state.json"
    lam = None
    if state.is_file():
        lam = json.loads(state.read_text()).get("lambda")
    return str(out), (float(lam) if lam is not None else None)
