"""The on-device model: llama-cpp-python serving a GGUF, with a LoRA adapter that can be swapped.

The only file of the project that imports `llama_cpp`. A `LocalModel` is not thread-safe (one
llama.cpp context): exactly one thread may call it (`edge_agent.worker.ModelWorker`).

Generation renders the paper's messages with the model's own chat template (GGUF metadata), then
decodes greedily (temperature 0) or by sampling until EOS, `max_tokens`, or the help trigger. The
trigger is detected by a stopping criterion on the decoded tail, so the returned text keeps it
(llama.cpp's stop strings would strip it and make EOS and trigger indistinguishable).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from collab.protocol import HELP_TRIGGER, split_at_trigger
from edge_agent.domain import ContextOverflow, Generation

# Decoded tail inspected for the trigger, in tokens: the trigger is ~6 tokens in BPE vocabularies.
_TRIGGER_WINDOW = 24


class LocalModel:
    def __init__(self, model_path: str, *, n_ctx: int = 2048, threads: int = 2, seed: int = 0,
                 adapter_path: str | None = None):
        self.model_path = model_path
        self._llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_threads=threads,
                                    n_threads_batch=threads, seed=seed, verbose=False)
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{model_path} has no tokenizer.chat_template in its metadata")
        vocab = self._llm._model
        self._formatter = Jinja2ChatFormatter(
            template,
            eos_token=vocab.token_get_text(self._llm.token_eos()),
            bos_token=vocab.token_get_text(self._llm.token_bos()),
        )
        self._adapter: llama_cpp.llama_adapter_lora_p | None = None
        self.adapter_path: str | None = None
        if adapter_path:
            self.set_adapter(adapter_path)

    @property
    def llama(self) -> llama_cpp.Llama:
        """The underlying llama-cpp-python object (benchmarks compare against it raw)."""
        return self._llm

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """Chat-template rendering of the messages, tokenized (special tokens parsed)."""
        prompt = self._formatter(messages=messages).prompt
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        if n_prompt + max_tokens > self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {n_prompt} tokens and max_tokens is {max_tokens}: together more "
                f"than the context window of {self.n_ctx} tokens"
            )

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float = 0.0, seed: int | None = None) -> Generation:
        tokens = self.prompt_tokens(messages)
        self.check_fits(len(tokens), max_tokens)
        n_prompt = len(tokens)

        def trigger_seen(input_ids: np.ndarray, _logits: np.ndarray) -> bool:
            tail = input_ids[n_prompt:][-_TRIGGER_WINDOW:].tolist()
            return HELP_TRIGGER in self._llm.detokenize(tail).decode("utf-8", "ignore")

        out = self._llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=temperature, seed=seed,
            # llama.cpp's defaults (top_k 40, repeat_penalty 1.1) would change the policy the
            # trainer optimised: plain temperature sampling, no penalties.
            top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
            stopping_criteria=llama_cpp.StoppingCriteriaList([trigger_seen]),
        )
        text, usage = out["choices"][0]["text"], out["usage"]
        local, asked = split_at_trigger(text)
        if asked:
            text = local + HELP_TRIGGER  # anything decoded after the trigger is discarded
        finish = "help" if asked else out["choices"][0]["finish_reason"]
        return Generation(text, asked, usage["prompt_tokens"], usage["completion_tokens"], finish)

    def next_token_logits(self, tokens: list[int]) -> np.ndarray:
        """Logits (n_vocab,) after `tokens`, from a clean context (for equivalence tests)."""
        self._llm.reset()
        self._llm.eval(tokens)
        ptr = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._llm.n_vocab(),)).copy()

    def set_adapter(self, path: str | None, scale: float = 1.0) -> None:
        """Replace the LoRA adapter (None: run the base model). Not thread-safe: worker only.

        The new adapter is loaded before the old one is dropped, so a bad file leaves the current
        adapter in place. The KV cache is cleared: a cached prompt prefix was computed with the
        old weights.
        """
        new = None
        if path is not None:
            if not Path(path).is_file():
                raise FileNotFoundError(f"adapter {path!r} does not exist")
            new = llama_cpp.llama_adapter_lora_init(self._llm._model.model, str(path).encode())
            if not new:
                raise ValueError(f"llama.cpp could not load {path!r} as a LoRA adapter for "
                                 f"{self.model_path}")
        if new is None:
            rc = llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(new)
            rc = llama_cpp.llama_set_adapters_lora(self._llm._ctx.ctx, adapters, 1,
                                                   (ctypes.c_float * 1)(scale))
        if rc != 0:
            if new is not None:
                llama_cpp.llama_adapter_lora_free(new)
            raise RuntimeError(f"llama_set_adapters_lora failed with {rc}")
        if self._adapter is not None:
            llama_cpp.llama_adapter_lora_free(self._adapter)
        self._adapter, self.adapter_path = new, (str(path) if path else None)
        self._llm.reset()
