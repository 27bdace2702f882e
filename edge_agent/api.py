"""The edge agent's REST API (FastAPI): wire <-> domain, and domain errors -> status codes.

Endpoints: POST /v1/answer, GET /v1/budget, GET|POST /v1/adapter, GET /health, GET /metrics (OpenAPI
at /docs), and the OpenAI-compatible POST /v1/chat/completions and GET /v1/models (`edge_agent.openai_api`).
Heavy resources (the model, the gRPC client, the outbox) are built in the lifespan, or injected
by tests (`create_app(settings, model=..., cloud=...)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from collab.cloud import CloudClient
from dagrpo.errors import UserError
from edge_agent.auth import ApiKeyMiddleware, BodyLimitMiddleware, EdgeKeys
from edge_agent.domain import InvalidQuestion
from edge_agent.metrics import EdgeMetrics
from edge_agent.openai_api import add_openai_routes
from edge_agent.outbox import UsageOutbox
from edge_agent.knob import HelpKnobs
from edge_agent.service import EdgeService, Question, resolve_adapter
from edge_agent.settings import EdgeSettings
from edge_agent.worker import ModelWorker, QueueFull
from llama_runtime.generation import ContextOverflow

log = logging.getLogger("edge_agent")

MAX_QUESTION_CHARS = 16_000
MAX_CHOICES = 10
DEFAULT_MAX_TOKENS = 512


class _Strict(BaseModel):
    # strict: "5" is not an int, 1 is not a bool; extra fields are a typo, not something to ignore
    model_config = ConfigDict(extra="forbid", strict=True)


class AnswerOptions(_Strict):
    max_tokens: int | None = Field(None, ge=1, le=8192, description="most new local tokens "
                                   f"(default {DEFAULT_MAX_TOKENS}, or the agent's limit if lower)")
    allow_cloud: bool = Field(True, description="ask the cloud when the model emits the trigger")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy decoding")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="sampling seed")
    max_help_share: float | None = Field(None, ge=0.0, le=1.0, description="with the help knob: ask on "
                                         "at most this share of answers (lowers the gateway's tau, never raises it)")


class AnswerRequest(_Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    task: str = Field(min_length=1, max_length=64, description="a registered task name, e.g. math")
    choices: list[str] = Field(default_factory=list, max_length=MAX_CHOICES,
                               description="answer options (multiple-choice tasks only)")
    example_id: str | None = Field(None, max_length=200, description="built-in example this "
                                   "question is (lets the reference cloud backend answer it)")
    options: AnswerOptions = Field(default_factory=AnswerOptions)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the question is blank")
        return v

    @field_validator("choices")
    @classmethod
    def _choices_not_blank(cls, v: list[str]) -> list[str]:
        if any(not c.strip() or len(c) > 1000 for c in v):
            raise ValueError("every choice must be non-blank and at most 1000 characters")
        return v


class TelemetryOut(BaseModel):
    task: str
    tau: float
    mode: str
    responses: int
    help_requests: int
    window_ratio: float
    lifetime_ratio: float
    credit: float
    report_ratio: float | None = None


class AnswerResponse(BaseModel):
    task: str
    route: str = Field(description="local | cloud | fallback (help asked, cloud not used)")
    answer: str | None = Field(description="extracted final answer (boxed; code: the program)")
    text: str = Field(description="the full response, composed with the cloud part if any")
    local_part: str
    cloud_part: str | None
    requested_help: bool
    cloud_used: bool
    cloud_skipped_reason: str | None = Field(
        description="not_requested | disabled | budget_exhausted | unavailable")
    telemetry: TelemetryOut | None
    prompt_tokens: int
    completion_tokens: int
    cloud_prompt_tokens: int
    cloud_completion_tokens: int
    finish_reason: str
    latency_s: float
    help_bias: float | None = Field(None, description="the help knob's bias for this answer (null: off)")
    reanswered: bool = Field(False, description="fallback: text and answer are a second local decode "
                             "with the trigger banned (the help request is still counted)")


class AdapterRequest(_Strict):
    path: str | None = Field(description="GGUF LoRA, peft adapter dir or training run dir; "
                             "null unloads the adapter")


def allowed_adapter_path(path: str, dirs: list[str]) -> bool:
    """True when `dirs` is empty or the resolved path lies inside one of them (decided on the
    path alone, so a refusal says nothing about whether the file exists)."""
    if not dirs:
        return True
    p = Path(path).resolve()
    return any(p.is_relative_to(Path(d).resolve()) for d in dirs)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def create_app(settings: EdgeSettings, *, model=None, cloud: CloudClient | None = None,
               connect_cloud: bool = True) -> FastAPI:
    """The app; `model`/`cloud` inject prebuilt ones (tests), else the lifespan builds them."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal model, cloud
        start_lambda = None  # lambda of the training run whose adapter is loaded at start
        if model is None:
            from llama_runtime.llm import LocalModel

            adapter, start_lambda = (resolve_adapter(settings.adapter_path, settings.model_path)
                                     if settings.adapter_path else (None, None))
            model = LocalModel(settings.model_path, n_ctx=settings.n_ctx, threads=settings.threads,
                               seed=settings.seed, adapter_path=adapter)
        if cloud is None and settings.gateway and connect_cloud:
            from collab.gateway_client import GatewayCloud

            cloud = GatewayCloud(settings.gateway, settings.api_key,
                                 timeout_s=settings.cloud_timeout_s, retries=settings.cloud_retries,
                                 tls=settings.gateway_tls_files(), insecure=settings.gateway_insecure)
        metrics = EdgeMetrics()
        outbox = UsageOutbox(settings.outbox_path)
        worker = ModelWorker(model, settings.queue_size)
        knobs = HelpKnobs.from_settings(settings, settings.adapter_path) if settings.help_knob else None
        service = EdgeService(worker, cloud, outbox, metrics, settings.model_path, knobs=knobs,
                              reanswer=settings.fallback_reanswer)
        if settings.adapter_path:
            service.adapter = {"path": model.adapter_path, "source": settings.adapter_path,
                               "lambda": start_lambda}
            if start_lambda is not None:
                metrics.lam.set(start_lambda)
        app.state.service = service
        flusher = asyncio.create_task(service.flush_loop(settings.flush_interval_s))
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.to_thread(worker.stop)
            with contextlib.suppress(Exception):  # best effort: what is not sent stays queued
                await asyncio.to_thread(service.flush_usage)
            outbox.close()

    app = FastAPI(title="dagrpo edge agent", version="1", lifespan=lifespan,
                  description="On-device answers with a quantized SLM; cloud help when the model "
                  "asks for it and the budget allows.")
    if settings.keys_file:
        app.add_middleware(ApiKeyMiddleware, keys=EdgeKeys.load(settings.keys_file))
    elif settings.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("the agent serves %s without API keys: anyone who reaches it can spend its "
                    "cloud budget (set EDGE_KEYS_FILE)", settings.host)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)  # outermost: runs first

    @app.exception_handler(InvalidQuestion)
    @app.exception_handler(ContextOverflow)
    async def _unprocessable(_req: Request, exc: Exception):
        return _error(422, str(exc))

    @app.exception_handler(QueueFull)
    async def _busy(_req: Request, exc: QueueFull):
        app.state.service.metrics.rejected.inc()
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.post("/v1/answer", response_model=AnswerResponse,
              responses={422: {"description": "bad input"},
                         503: {"description": "queue full; see Retry-After"}})
    async def answer(body: AnswerRequest, request: Request) -> AnswerResponse:
        service: EdgeService = request.app.state.service
        o = body.options
        max_tokens = o.max_tokens or min(DEFAULT_MAX_TOKENS, settings.max_tokens_limit)
        if max_tokens > settings.max_tokens_limit:
            raise InvalidQuestion(f"options.max_tokens={max_tokens} is above this agent's "
                                  f"limit of {settings.max_tokens_limit}")
        q = Question(task=body.task, question=body.question, choices=tuple(body.choices),
                     max_tokens=max_tokens, allow_cloud=o.allow_cloud,
                     temperature=o.temperature, seed=o.seed, example_id=body.example_id,
                     max_help_share=o.max_help_share)
        a = await service.answer(q)
        service.metrics.latency.labels(a.route).observe(a.latency_s)
        return AnswerResponse(**asdict(a))

    @app.get("/v1/budget")
    async def get_budget(request: Request) -> dict:
        return request.app.state.service.budget()

    add_openai_routes(app, settings, DEFAULT_MAX_TOKENS)

    @app.get("/v1/adapter")
    async def get_adapter(request: Request) -> dict:
        return {"adapter": request.app.state.service.adapter}

    @app.post("/v1/adapter", responses={404: {"description": "no such file"},
                                        422: {"description": "not a loadable adapter"}})
    async def post_adapter(body: AdapterRequest, request: Request):
        if body.path is not None and not allowed_adapter_path(body.path, settings.adapter_dirs):
            return _error(403, "adapter paths must lie inside the agent's adapter directories "
                          "(EDGE_ADAPTER_DIRS)")
        try:
            return {"adapter": await request.app.state.service.load_adapter(body.path)}
        except FileNotFoundError as exc:
            return _error(404, str(exc))
        except (UserError, ValueError) as exc:
            return _error(422, str(exc))

    @app.get("/health")
    async def health(request: Request) -> dict:
        s: EdgeService = request.app.state.service
        return {"status": "ok", "model": settings.model_path, "adapter": s.adapter,
                "cloud": s.cloud is not None, "queue_depth": s.worker.depth,
                "usage_pending": s.outbox.pending()}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        s: EdgeService = request.app.state.service
        s.metrics.queue_depth.set(s.worker.depth)
        return Response(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
