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
from collab.tokens import shared_prefix_len
from llama_runtime.generation import ContextOverflow, Generation

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


class BatchSampler:
    """Sample n completions of each prompt as ONE llama.cpp batch (RL rollouts; low-level API).

    Each prompt is decoded once into sequence b*n and copied into the n-1 sibling sequences with
    `llama_memory_seq_cp` (a unified KV cache shares those cells, so the copy costs no memory);
    every decode step then carries one token per unfinished sequence. The prefix that all prompts
    of a call share (the system prompt of one task) is decoded once and shared the same way. Sampling is plain
    temperature sampling from numpy (no top-k/top-p/penalties: the distribution the torch engine
    samples), seeded per call, and returns each token's log-prob under that sampling distribution
    so the trainer can measure the sampler/policy mismatch. Temperature 0 is greedy (log-prob at
    temperature 1). The LoRA adapter is swapped in place from a GGUF file; the KV cache is cleared
    on every swap and before every call (no state computed with older weights survives).
    """

    def __init__(self, model_path: str, *, n_seq_max: int = 32, n_ctx: int = 8192, n_batch: int = 512,
                 threads: int = 2):
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's load chatter; the module-level log callback stays alive
        mparams = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {model_path!r}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, n_batch, n_batch
        cparams.n_seq_max, cparams.kv_unified = n_seq_max, True
        cparams.n_threads = cparams.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise RuntimeError(f"llama.cpp could not create a context (n_ctx={n_ctx}, n_seq_max={n_seq_max})")
        self.model_path, self.n_ctx, self.n_seq_max, self.n_batch = str(model_path), n_ctx, n_seq_max, n_batch
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self._model))
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._adapter = None

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            if self._adapter is not None:
                llama_cpp.llama_adapter_lora_free(self._adapter)
            llama_cpp.llama_model_free(self._model)
            self._ctx = self._model = self._adapter = None

    def set_adapter(self, path: str | None, scale: float = 1.0) -> None:
        """Swap the LoRA (None: base model) in the live context, then clear the KV cache."""
        new = None
        if path is not None:
            new = llama_cpp.llama_adapter_lora_init(self._model, str(path).encode())
            if not new:
                raise ValueError(f"llama.cpp could not load {path!r} as a LoRA adapter for {self.model_path}")
            rc = llama_cpp.llama_set_adapters_lora(self._ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(new), 1,
                                                   (ctypes.c_float * 1)(scale))
        else:
            rc = llama_cpp.llama_set_adapters_lora(self._ctx, None, 0, None)
        if rc != 0:
            if new is not None:
                llama_cpp.llama_adapter_lora_free(new)
            raise RuntimeError(f"llama_set_adapters_lora failed with {rc}")
        if self._adapter is not None:
            llama_cpp.llama_adapter_lora_free(self._adapter)
        self._adapter = new
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)

    def _decode(self, tokens: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, seq_id, wants_logits) entries (<= n_batch)."""
        b = self._batch
        for i, (tok, pos, seq, out) in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, out
            b.seq_id[i][0] = seq
        b.n_tokens = len(tokens)
        rc = llama_cpp.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with {rc} (KV cache full? n_ctx={self.n_ctx})")

    MIN_SHARED_PREFIX = 16  # below this, sharing a prefix saves less than it costs

    @classmethod
    def shared_prefix_len(cls, prompts: list[list[int]]) -> int:
        """Tokens that every prompt starts with, leaving each at least one token of its own
        (its last position's logits start its samples); 0 for one prompt or a short prefix."""
        return shared_prefix_len(prompts, cls.MIN_SHARED_PREFIX) if len(prompts) > 1 else 0

    def _prefill(self, tokens: list[int], start: int, seq: int, *, logits_at_end: bool) -> None:
        """Decode `tokens` at positions start.. into sequence `seq`, in chunks of n_batch."""
        for lo in range(0, len(tokens), self.n_batch):
            chunk = tokens[lo: lo + self.n_batch]
            self._decode([(t, start + lo + k, seq, logits_at_end and lo + k == len(tokens) - 1)
                          for k, t in enumerate(chunk)])

    def _logits(self, i: int) -> np.ndarray:
        """(n_vocab,) float32 view of the logits of the i-th output of the last decode (no copy)."""
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,))

    def sample(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float, seed: int,
               eos: set[int], stop=None) -> list[list[tuple[list[int], list[float]]]]:
        """-> [prompt][sample] (token ids, log-prob of each under the sampling distribution).

        A sequence ends at a token in `eos` (kept), when `stop(token_ids)` is true, or at
        `max_new_tokens`.
        """
        n_seqs = len(prompts) * n
        need = sum(len(p) for p in prompts) + n_seqs * max_new_tokens
        if n_seqs > self.n_seq_max or need > self.n_ctx:
            raise ValueError(f"{n_seqs} sequences needing {need} KV cells exceed n_seq_max={self.n_seq_max} / "
                             f"n_ctx={self.n_ctx}")
        rng = np.random.default_rng(seed)
        mem = llama_cpp.llama_get_memory(self._ctx)
        llama_cpp.llama_memory_clear(mem, True)
        toks: list[list[int]] = [[] for _ in range(n_seqs)]
        logps: list[list[float]] = [[] for _ in range(n_seqs)]
        # Prompts of one task share their system prompt: decode that prefix once into sequence 0
        # and share its KV cells with every prompt's first sequence (unified KV cache).
        shared = self.shared_prefix_len(prompts)
        if shared:
            self._prefill(prompts[0][:shared], 0, 0, logits_at_end=False)
            for b in range(1, len(prompts)):
                llama_cpp.llama_memory_seq_cp(mem, 0, b * n, -1, -1)
        for b, prompt in enumerate(prompts):  # prompt b -> sequence b*n, then copied to its siblings
            self._prefill(prompt[shared:], shared, b * n, logits_at_end=True)
            for s in range(b * n + 1, (b + 1) * n):
                llama_cpp.llama_memory_seq_cp(mem, b * n, s, -1, -1)
            logits = self._logits(-1)  # the prompt's last position, shared by its n samples
            for s in range(b * n, (b + 1) * n):
                self._push(toks[s], logps[s], logits, temperature, rng)
        plen = [len(prompts[s // n]) for s in range(n_seqs)]
        live = [s for s in range(n_seqs) if not self._done(toks[s], max_new_tokens, eos, stop)]
        while live:
            self._decode([(toks[s][-1], plen[s] + len(toks[s]) - 1, s, True) for s in live])
            for i, s in enumerate(live):
                self._push(toks[s], logps[s], self._logits(i), temperature, rng)
            live = [s for s in live if not self._done(toks[s], max_new_tokens, eos, stop)]
        return [[(toks[s], logps[s]) for s in range(b * n, (b + 1) * n)] for b in range(len(prompts))]

    @staticmethod
    def _done(toks: list[int], max_new_tokens: int, eos: set[int], stop) -> bool:
        return len(toks) >= max_new_tokens or toks[-1] in eos or (stop is not None and stop(toks))

    @staticmethod
    def _push(toks: list[int], logps: list[float], logits: np.ndarray, temperature: float,
              rng: np.random.Generator) -> None:
        z = logits.astype(np.float64) / (temperature if temperature > 0 else 1.0)
        z -= z.max()
        p = np.exp(z)
        total = p.sum()
        if temperature > 0:
            tok = int(np.searchsorted(np.cumsum(p), rng.random() * total, side="right"))
            tok = min(tok, len(p) - 1)  # rng.random() * total can round up to the last edge
        else:
            tok = int(np.argmax(z))
        toks.append(tok)
        logps.append(float(z[tok] - np.log(total)))
