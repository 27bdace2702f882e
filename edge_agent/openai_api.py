"""The OpenAI-compatible face of the edge agent: POST /v1/chat/completions and GET /v1/models.

What standard clients (the `openai` package, LangChain, chat UIs) see:
- models `dagrpo-<task>`, one per registered task: the model name picks the task (the extension
  field `dagrpo.task` overrides it);
- the question is the last message, which must be the user's; the task's own prompt (paper F.1)
  replaces any system prompt, so earlier messages are not used (`dagrpo.ignored_messages` says
  how many);
- `stream: true` is server-sent events of `chat.completion.chunk`s ending with `data: [DONE]`
  (`stream_options.include_usage` adds the usage chunk); the streamed text is the local tokens as
  they are decoded, then the cloud's completion (`edge_agent.streaming`), never the trigger;
- `finish_reason`: `stop` / `length` for a local answer, `stop` for one the cloud completed, and
  for a help request the cloud did not serve `cloud_<reason>` (`cloud_budget_exhausted`,
  `cloud_unavailable`, `cloud_disabled`, `cloud_interrupted`);
- `usage`: the local prompt, and local + cloud completion tokens; the split, the route and the
  budget telemetry are in the extension field `dagrpo` of the response (the last chunk when
  streaming), which standard clients ignore;
- errors in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.
Sampling parameters the agent does not have (top_p, penalties, stop strings, n > 1) are accepted
only at their neutral values and refused otherwise: the agent decodes the policy it was trained
as, plain temperature sampling.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from collab.tasks import list_tasks
from edge_agent.domain import InvalidQuestion
from edge_agent.service import Answer, Question
from edge_agent.settings import EdgeSettings
from edge_agent.streaming import Delta, Finished, answer_stream
from edge_agent.worker import QueueFull
from llama_runtime.generation import ContextOverflow

MODEL_PREFIX = "dagrpo-"
OPENAI_PATHS = ("/v1/chat/", "/v1/models")
MAX_MESSAGES = 64
MAX_CONTENT_CHARS = 16_000


# OpenAI's sampling fields the agent lacks -> (the neutral values it accepts, why it refuses others):
# the agent decodes the policy it was trained as, plain temperature sampling.
NEUTRAL: dict[str, tuple[tuple, str]] = {
    "top_p": ((None, 1), "this agent samples with temperature only: top_p must be 1"),
    "presence_penalty": ((None, 0), "this agent applies no penalties: give 0 or omit it"),
    "frequency_penalty": ((None, 0), "this agent applies no penalties: give 0 or omit it"),
    "stop": ((None, "", []), "stop strings are not supported (the help trigger is the agent's stop)"),
    "logprobs": ((None, False), "logprobs are not supported"),
}


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Closed):
    type: Literal["text"]
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class ChatMessage(_Closed):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, max_length=64)

    @field_validator("content")
    @classmethod
    def _size(cls, v):
        if v is not None and len(v if isinstance(v, str) else "".join(p.text for p in v)) > MAX_CONTENT_CHARS:
            raise ValueError(f"a message may have at most {MAX_CONTENT_CHARS} characters")
        return v

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Closed):
    include_usage: bool = False


class DagrpoOptions(_Closed):
    """The extension field `dagrpo` (openai client: `extra_body={"dagrpo": {...}}`)."""

    task: str | None = Field(None, min_length=1, max_length=64, description="overrides the model name's task")
    choices: list[str] = Field(default_factory=list, max_length=10, description="multiple-choice options")
    example_id: str | None = Field(None, max_length=200, description="built-in example the question is")
    allow_cloud: bool = Field(True, description="ask the cloud when the model emits the trigger")
    max_help_share: float | None = Field(None, ge=0.0, le=1.0, description="with the help knob: ask on "
                                         "at most this share of answers (lowers the gateway's tau, never raises it)")


class ChatCompletionRequest(_Closed):
    model: str = Field(min_length=1, max_length=128, description=f"{MODEL_PREFIX}<task>, see GET /v1/models")
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, description="wins over max_tokens")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="default 0: greedy")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    user: str | None = Field(None, max_length=256)
    n: Literal[1] | None = Field(None, description="one choice only")
    top_p: float | None = Field(None, description="only 1 (plain temperature sampling)")
    presence_penalty: float | None = Field(None, description="only 0")
    frequency_penalty: float | None = Field(None, description="only 0")
    stop: str | list[str] | None = Field(None, description="not supported: only null or []")
    logprobs: bool | None = Field(None, description="not supported: only false")
    dagrpo: DagrpoOptions = Field(default_factory=DagrpoOptions)

    @field_validator(*NEUTRAL)
    @classmethod
    def _neutral_only(cls, v, info):
        allowed, why = NEUTRAL[info.field_name]
        if v not in allowed:
            raise ValueError(why)
        return v


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.type, self.code, self.param, self.headers = status, type_, code, param, headers

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def finish_reason(a: Answer) -> str:
    """OpenAI's finish_reason for an answer; a help request the cloud did not serve says why."""
    if a.route == "local":
        return a.finish_reason
    return "stop" if a.route == "cloud" else f"cloud_{a.cloud_skipped_reason}"


def usage(a: Answer) -> dict:
    completion = a.completion_tokens + a.cloud_completion_tokens
    return {"prompt_tokens": a.prompt_tokens, "completion_tokens": completion,
            "total_tokens": a.prompt_tokens + completion}


def extension(a: Answer, ignored_messages: int) -> dict:
    """The `dagrpo` field of a reply: route, the token split, the telemetry."""
    return {"task": a.task, "route": a.route, "answer": a.answer, "requested_help": a.requested_help,
            "cloud_used": a.cloud_used, "cloud_skipped_reason": a.cloud_skipped_reason,
            "local_completion_tokens": a.completion_tokens, "cloud_prompt_tokens": a.cloud_prompt_tokens,
            "cloud_completion_tokens": a.cloud_completion_tokens, "telemetry": a.telemetry,
            "latency_s": a.latency_s, "help_bias": a.help_bias, "ignored_messages": ignored_messages}


def task_of(body: ChatCompletionRequest) -> str:
    task = body.dagrpo.task
    if task is None:
        if not body.model.startswith(MODEL_PREFIX):
            raise OpenAIError(404, f"the model {body.model!r} does not exist: use one of GET /v1/models "
                              f"({MODEL_PREFIX}<task>) or give dagrpo.task", code="model_not_found",
                              param="model")
        task = body.model[len(MODEL_PREFIX):]
        if task not in list_tasks():
            raise OpenAIError(404, f"the model {body.model!r} does not exist: no task {task!r}",
                              code="model_not_found", param="model")
    return task


def to_question(body: ChatCompletionRequest, settings: EdgeSettings, default_max_tokens: int) -> Question:
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise OpenAIError(400, "the last message must be the user's question, non-blank", param="messages")
    max_tokens = body.max_completion_tokens or body.max_tokens or min(default_max_tokens, settings.max_tokens_limit)
    if max_tokens > settings.max_tokens_limit:
        raise OpenAIError(400, f"max_tokens={max_tokens} is above this agent's limit of "
                          f"{settings.max_tokens_limit}", param="max_tokens")
    x = body.dagrpo
    return Question(task=task_of(body), question=last.text(), choices=tuple(x.choices), max_tokens=max_tokens,
                    allow_cloud=x.allow_cloud, temperature=body.temperature or 0.0, seed=body.seed,
                    example_id=x.example_id, max_help_share=x.max_help_share)


def domain_error(exc: Exception) -> OpenAIError:
    if isinstance(exc, ContextOverflow):
        return OpenAIError(400, str(exc), code="context_length_exceeded", param="messages")
    if isinstance(exc, QueueFull):
        return OpenAIError(503, str(exc), "server_error", code="queue_full",
                           headers={"Retry-After": str(exc.retry_after_s)})
    return OpenAIError(400, str(exc))


def add_openai_routes(app: FastAPI, settings: EdgeSettings, default_max_tokens: int) -> None:
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if not request.url.path.startswith(OPENAI_PATHS):
            return await request_validation_exception_handler(request, exc)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return OpenAIError(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", param=where).response()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL_PREFIX + t, "object": "model", "created": created,
                                            "owned_by": "dagrpo"} for t in list_tasks()]}

    @app.post("/v1/chat/completions", responses={400: {"description": "bad input (OpenAI error shape)"},
                                                 404: {"description": "unknown model"},
                                                 503: {"description": "queue full; see Retry-After"}})
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        service = request.app.state.service
        try:
            q = to_question(body, settings, default_max_tokens)
            events = answer_stream(service, q)
            await anext(events)  # Started: the prompt fits and the model took the job
        except OpenAIError as exc:
            return exc.response()
        except (InvalidQuestion, ContextOverflow, QueueFull) as exc:
            if isinstance(exc, QueueFull):
                service.metrics.rejected.inc()
            return domain_error(exc).response()
        ignored = len(body.messages) - 1
        reply_id, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": reply_id, "created": now, "model": body.model}
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(_sse(events, head, ignored, include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            async for event in events:
                if isinstance(event, Finished):
                    a, shown = event.answer, event.shown
        finally:
            await events.aclose()
        return {**head, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": shown},
                             "finish_reason": finish_reason(a), "logprobs": None}],
                "usage": usage(a), "dagrpo": jsonable_encoder(extension(a, ignored))}


def _chunk(head: dict, delta: dict, finish: str | None = None, **extra) -> str:
    body = {**head, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body)}\n\n"


async def _sse(events: AsyncIterator, head: dict, ignored: int, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events of one answer; the generator is closed whatever ends it (a client gone)."""
    try:
        yield _chunk(head, {"role": "assistant", "content": ""})
        async for event in events:
            if isinstance(event, Delta):
                yield _chunk(head, {"content": event.text})
            elif isinstance(event, Finished):
                a = event.answer
                yield _chunk(head, {}, finish_reason(a), dagrpo=jsonable_encoder(extension(a, ignored)))
                if include_usage:
                    yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage(a)})}\n\n"
        yield "data: [DONE]\n\n"
    except Exception as exc:  # after the headers went out, an error can only travel in the stream
        yield f"data: {json.dumps(OpenAIError(500, f'the answer failed: {exc}', 'server_error').body())}\n\n"
        raise
    finally:
        await events.aclose()
