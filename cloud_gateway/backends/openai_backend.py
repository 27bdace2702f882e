"""The `openai` cloud: any OpenAI-compatible chat server (vLLM, a hosted API, llama-cpp-python).

Sends the device's rendered messages to `/v1/chat/completions` (`stream` for AssistStream: the
deltas as the server sends them, and its usage when it reports one in the stream (vLLM does with
`include_usage`); llama-cpp-python's server sends none: then the completion is one token per
content chunk, which is how it sends them, and the prompt counts 0 tokens). The `openai` client applies the
per-attempt timeout and bounded retries (exponential backoff on connection errors, 408, 429, 5xx);
the whole call is also bounded by the caller's remaining gRPC deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import openai

from cloud_gateway.backends.base import AssistInput, BackendInputError, BackendUnavailable
from cloud_gateway.store.base import Completion

log = logging.getLogger("cloud_gateway")


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str = "none", *, timeout_s: float = 60.0,
                 retries: int = 2, max_tokens: int = 512, temperature: float = 0.0):
        self.base_url, self.model = base_url, model
        self.max_tokens, self.temperature = max_tokens, temperature
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s,
                                         max_retries=retries)

    def validate(self, request: AssistInput) -> None:
        return None  # any chat prompt will do; the gateway already checked its size

    async def complete(self, request: AssistInput, timeout_s: float) -> Completion:
        with self._upstream_errors():
            async with asyncio.timeout(timeout_s):
                reply = await self._create(request)
        text = reply.choices[0].message.content or ""
        return self._completion(text, reply.usage, 0)

    async def stream(self, request: AssistInput, timeout_s: float) -> AsyncIterator[str | Completion]:
        parts: list[str] = []
        usage = None
        with self._upstream_errors():
            async with asyncio.timeout(timeout_s):
                response = await self._create(request, stream=True, stream_options={"include_usage": True})
                async with response:
                    async for chunk in response:
                        usage = chunk.usage or usage
                        delta = chunk.choices[0].delta.content if chunk.choices else None
                        if delta:
                            parts.append(delta)
                            yield delta
        yield self._completion("".join(parts), usage, len(parts))

    def _create(self, request: AssistInput, **kw):
        messages = [{"role": role, "content": content} for role, content in request.messages]
        return self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=self.max_tokens,
                                                   temperature=self.temperature, **kw)

    def _completion(self, text: str, usage, chunks: int) -> Completion:
        """`chunks`: the completion's tokens when the server reports no usage (one per streamed chunk)."""
        return Completion(text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else chunks,
                          self.name)

    @contextlib.contextmanager
    def _upstream_errors(self) -> Iterator[None]:
        """The server's failures as backend errors. The detail (its address, its own text) goes to
        the gateway log only; what a device gets back names neither."""
        try:
            yield
        except (TimeoutError, openai.APITimeoutError):
            log.warning("cloud model at %s timed out", self.base_url)
            raise BackendUnavailable("cloud model timed out") from None
        except openai.APIConnectionError as exc:
            log.warning("cloud model at %s unreachable: %s", self.base_url, exc)
            raise BackendUnavailable("cloud model unreachable") from None
        except openai.BadRequestError as exc:
            log.warning("cloud model at %s refused a request (HTTP 400): %s", self.base_url, exc.message)
            raise BackendInputError("the cloud model refused the request (HTTP 400)") from None
        except openai.APIStatusError as exc:
            log.warning("cloud model at %s failed: HTTP %s %s", self.base_url, exc.status_code, exc.message)
            raise BackendUnavailable(f"cloud model failed (HTTP {exc.status_code})") from None

    async def close(self) -> None:
        await self.client.close()
