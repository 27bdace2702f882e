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
from collections.abc import AsyncIterator

import openai

from cloud_gateway.backends.base import AssistInput, BackendInputError, BackendUnavailable
from cloud_gateway.store.base import Completion


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
        messages = [{"role": role, "content": content} for role, content in request.messages]
        try:
            reply = await asyncio.wait_for(
                self.client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=self.max_tokens,
                    temperature=self.temperature),
                timeout=timeout_s)
        except (asyncio.TimeoutError, openai.APITimeoutError):
            raise BackendUnavailable(f"cloud model at {self.base_url} timed out") from None
        except openai.APIConnectionError as exc:
            raise BackendUnavailable(f"cloud model at {self.base_url} unreachable: {exc}") from None
        except openai.BadRequestError as exc:
            raise BackendInputError(f"cloud model refused the request: {exc.message}") from None
        except openai.APIStatusError as exc:
            raise BackendUnavailable(f"cloud model at {self.base_url} failed: HTTP {exc.status_code} "
                                     f"{exc.message}") from None
        text = reply.choices[0].message.content or ""
        usage = reply.usage
        return Completion(text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                          self.name)

    async def stream(self, request: AssistInput, timeout_s: float) -> AsyncIterator[str | Completion]:
        messages = [{"role": role, "content": content} for role, content in request.messages]
        parts: list[str] = []
        chunks, usage = 0, None
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=self.max_tokens,
                    temperature=self.temperature, stream=True, stream_options={"include_usage": True})
                async with response:
                    async for chunk in response:
                        usage = chunk.usage or usage
                        delta = chunk.choices[0].delta.content if chunk.choices else None
                        if delta:
                            chunks += 1
                            parts.append(delta)
                            yield delta
        except (TimeoutError, openai.APITimeoutError):
            raise BackendUnavailable(f"cloud model at {self.base_url} timed out") from None
        except openai.APIConnectionError as exc:
            raise BackendUnavailable(f"cloud model at {self.base_url} unreachable: {exc}") from None
        except openai.BadRequestError as exc:
            raise BackendInputError(f"cloud model refused the request: {exc.message}") from None
        except openai.APIStatusError as exc:
            raise BackendUnavailable(f"cloud model at {self.base_url} failed: HTTP {exc.status_code} "
                                     f"{exc.message}") from None
        yield Completion("".join(parts), usage.prompt_tokens if usage else 0,
                         usage.completion_tokens if usage else chunks, self.name)

    async def close(self) -> None:
        await self.client.close()
