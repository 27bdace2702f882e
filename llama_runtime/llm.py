"""The on-device model: llama-cpp-python serving a GGUF, with a LoRA adapter that can be swapped.

The only file of the project that imports `llama_cpp`. A `LocalModel` is not thread-safe (one
llama.cpp context): exactly one thread may call it (`edge_agent.worker.ModelWorker`).

Generation renders the paper's messages with the model's own chat template (GGUF metadata), then
decodes greedily (temperature 0) or by sampling until EOS, `max_tokens`, or the help trigger. The
trigger is detected by a stopping criterion on the decoded tail, so the returned text keeps it
(llama.cpp's stop strings would strip it and make EOS and trigger indistinguishable).
`stream` is the same decoding, yielding each token's text as it is decoded.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from collab.help_knob import ask_logit
from collab.protocol import HELP_TRIGGER, split_at_trigger
from collab.tokens import shared_prefix_len
from llama_runtime.generation import ContextOverflow, Generation

# Decoded tail inspected for the trigger, in tokens: the trigger is ~6 tokens in BPE vocabularies.
_TRIGGER_WINDOW = 24

log = logging.getLogger("dagrpo.llama_cpp")
# ggml_log_level -> Python level. Only llama.cpp's errors reach the default WARNING threshold; its
# warnings (e.g. one "cannot use buft" line per LoRA tensor) and chatter show with --log-level debug.
_GGML_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.ERROR, 4: logging.DEBUG}
_GGML_CONT = 5  # continues the previous message


class _LogRouter:
    """llama.cpp's log callback -> Python logging, one record per completed line."""

    def __init__(self) -> None:
        self.level, self.parts = logging.DEBUG, []

    def __call__(self, level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level != _GGML_CONT:
            self.level = _GGML_LEVELS.get(level, logging.DEBUG)
        self.parts.append(text.decode("utf-8", errors="replace"))
        if self.parts[-1].endswith("\n"):
            line, self.parts = "".join(self.parts).rstrip(), []
            if line:
                log.log(self.level, "%s", line)


@functools.cache
def route_llama_logs():
    """Install the router once per process; the ctypes callback is returned and cached, so it
    stays referenced for the life of the process (a collected callback segfaults)."""
    callback = llama_cpp.llama_log_callback(_LogRouter())
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback


def probe(model_path: str, n_tokens: int = 8) -> str:
    """Load the model and decode `n_tokens` greedily: the check that a llama.cpp build runs on this
    CPU (`dagrpo doctor` runs it in a child process; a build for another CPU dies with SIGILL)."""
    route_llama_logs()
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, n_threads=2, verbose=False)
    # A prompt of ~200 tokens: llama.cpp takes its batched matmul kernels (AMX, AVX-512 repack)
    # only for a batch of many tokens; a few-token prompt can pass on a build that crashes later.
    prompt = "Count with me: " + " ".join(str(i) for i in range(100))
    t0 = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=n_tokens, temperature=0.0)
    n, n_prompt = out["usage"]["completion_tokens"], out["usage"]["prompt_tokens"]
    features = [f.split(" = ")[0] for f in llama_cpp.llama_print_system_info().decode().split(" | ")
                if f.endswith(" = 1")]
    return (f"prefilled {n_prompt} tokens and decoded {n} in {time.perf_counter() - t0:.2f} s; "
            f"CPU features: {','.join(features)}")


class LocalModel:
    def __init__(self, model_path: str, *, n_ctx: int = 2048, threads: int = 2, seed: int = 0,
                 adapter_path: str | None = None):
        self.model_path = model_path
        route_llama_logs()
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
        self._threads = threads
        self._knob: KnobDecoder | None = None  # a second context for help-knob decoding, on first use
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

    def generate_knob(self, messages: list[dict[str, str]], *, max_tokens: int, help_bias: float,
                      temperature: float = 0.0, seed: int | None = None) -> tuple[Generation, float]:
        """`generate` with the help knob (collab.help_knob) -> (generation, the query's ask score).

        Decoded on a second llama.cpp context over the same (mmapped) model and the same adapter
        (KnobDecoder); `help_bias = -inf` never asks: the device's best local answer.
        """
        self.check_fits(len(self.prompt_tokens(messages)), max_tokens)
        (a,) = self._knob_decoder().decode([messages], max_new_tokens=max_tokens, help_bias=help_bias,
                                           temperature=temperature, seed=seed or 0)
        return _knob_generation(a), a.score

    def stream_knob(self, messages: list[dict[str, str]], *, max_tokens: int, help_bias: float,
                    temperature: float = 0.0, seed: int | None = None
                    ) -> Generator[str, None, tuple[Generation, float]]:
        """`generate_knob`, streamed as `stream` is: yields each step's text (the trigger's
        included), returns (generation, ask score), the same tokens as `generate_knob` gives. The
        prompt is checked before the first token; closing the generator stops decoding."""
        self.check_fits(len(self.prompt_tokens(messages)), max_tokens)
        return self._stream_knob(messages, max_tokens, help_bias, temperature, seed)

    def _stream_knob(self, messages, max_tokens, help_bias, temperature, seed):
        a = yield from self._knob_decoder().stream(messages, max_new_tokens=max_tokens, help_bias=help_bias,
                                                   temperature=temperature, seed=seed or 0)
        return _knob_generation(a), a.score

    def _knob_decoder(self) -> "KnobDecoder":
        """A second llama.cpp context for help-knob decoding, built on first use."""
        if self._knob is None:
            self._knob = KnobDecoder(self.model_path, adapter_path=self.adapter_path, threads=self._threads,
                                     n_seq_max=2, n_ctx=self.n_ctx)
        return self._knob

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0,
               seed: int | None = None) -> Generator[str, None, Generation]:
        """`generate`, streamed: yields each decoded token's text (the trigger's included) and
        returns the same `Generation` as `generate` (`yield from` gets it). The prompt is checked
        here, before the first token: an overflowing prompt raises ContextOverflow at once.
        Closing the generator stops decoding."""
        tokens = self.prompt_tokens(messages)
        self.check_fits(len(tokens), max_tokens)
        return self._stream(tokens, max_tokens, temperature, seed)

    def _stream(self, tokens: list[int], max_tokens: int, temperature: float,
                seed: int | None) -> Generator[str, None, Generation]:
        # The trigger stops decoding here, on the streamed tail (the same window as `generate`'s
        # stopping criterion), one decode step sooner than a criterion could.
        chunks = self._llm.create_completion(
            tokens, max_tokens=max_tokens, temperature=temperature, seed=seed, stream=True,
            top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,  # plain sampling, as in `generate`
        )
        parts: list[str] = []
        finish = "length"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["finish_reason"] is not None:  # the last chunk: no text, only the reason
                    finish = choice["finish_reason"]
                    break
                parts.append(choice["text"])  # one chunk per completion token
                yield choice["text"]
                if HELP_TRIGGER in "".join(parts[-_TRIGGER_WINDOW:]):
                    break  # the trigger is whole: what llama.cpp would decode next is discarded
        finally:
            chunks.close()
        local, asked = split_at_trigger("".join(parts))
        text = local + HELP_TRIGGER if asked else "".join(parts)
        return Generation(text, asked, len(tokens), len(parts), "help" if asked else finish)

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
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"adapter {path!r} does not exist")
        self._adapter = _swap_lora(self._llm._model.model, self._llm._ctx.ctx, self._adapter, path, scale,
                                   self.model_path)
        self.adapter_path = str(path) if path else None
        self._llm.reset()
        if self._knob is not None:
            self._knob.sampler.set_adapter(self.adapter_path)


def _swap_lora(model, ctx, old, path: str | None, scale: float, model_path: str):
    """Load the LoRA GGUF at `path` (None: no adapter) and make it the only adapter of `ctx`; the old
    one is freed once the new one is set, the new one if setting it fails. -> the adapter now set."""
    new = None
    if path is not None:
        new = llama_cpp.llama_adapter_lora_init(model, str(path).encode())
        if not new:
            raise ValueError(f"llama.cpp could not load {path!r} as a LoRA adapter for {model_path}")
        rc = llama_cpp.llama_set_adapters_lora(ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(new), 1,
                                               (ctypes.c_float * 1)(scale))
    else:
        rc = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
    if rc != 0:
        if new is not None:
            llama_cpp.llama_adapter_lora_free(new)
        raise RuntimeError(f"llama_set_adapters_lora failed with {rc}")
    if old is not None:
        llama_cpp.llama_adapter_lora_free(old)
    return new


def _knob_generation(a: "KnobAnswer") -> Generation:
    return Generation(a.text, a.asked, a.prompt_tokens, a.completion_tokens, a.finish)


def _logsumexp(z: np.ndarray) -> float:
    m = float(z.max())
    return m + math.log(float(np.exp(z.astype(np.float64) - m).sum()))


KNOB_MIN_LOGP = -8.0  # a position is a candidate start of the trigger when its first token has p >= e^-8


class _KnobState:
    """Per-sequence state of the help knob in one `sample_with_knob` call.

    `triggers` = (the trigger's ids at a line start, its ids after other text: " I need ...").
    """

    def __init__(self, sampler: "BatchSampler", triggers: tuple[list[int], list[int]], bias: float,
                 plen: list[int], max_new_tokens: int, line_reach: float = 0.0):
        self.sampler, self.triggers, self.bias, self.plen = sampler, triggers, bias, plen
        self.line_reach = line_reach  # at a line start the candidate floor is KNOB_MIN_LOGP - line_reach
        self.max_new_tokens = max_new_tokens
        self.text = [""] * len(plen)  # decoded response so far
        self.scores = [-math.inf] * len(plen)
        self.asked = [False] * len(plen)
        # per sequence, each candidate position met: (token index, ask score, trigger ids, their log-probs)
        self.candidates: list[list[tuple[int, float, list[int], list[float]]]] = [[] for _ in plen]

    def trigger_here(self, s: int, n_tokens: int) -> list[int] | None:
        """The trigger's ids if it may start here (inside <think>, with room for it), else None."""
        t = self.text[s]
        if "<think>" not in t or "</think>" in t:
            return None
        trig = self.triggers[0] if t.endswith("\n") else self.triggers[1]
        return trig if n_tokens + len(trig) <= self.max_new_tokens else None

    def advance(self, s: int, tok: int) -> None:
        self.text[s] += self.sampler.piece(tok)

    def finish(self, s: int, n_tokens: int, wrote_trigger: bool) -> None:
        """Sequence s has ended after n_tokens. If it wrote the trigger though the knob did not ask
        (other tokens, or mid-line where the knob does not look), it asks at every bias: its score
        is +inf and its last candidate is its end, (n_tokens, +inf, no ids, no log-probs)."""
        if wrote_trigger and not self.asked[s]:
            self.scores[s] = math.inf
            self.candidates[s].append((n_tokens, math.inf, [], []))


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
        route_llama_logs()
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
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._pieces: dict[int, str] = {}

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
        self._adapter = _swap_lora(self._model, self._ctx, self._adapter, path, scale, self.model_path)
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

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """`text` as token ids (no BOS; `special`: special tokens such as <|im_start|> are parsed)."""
        raw = text.encode("utf-8")
        buf = (llama_cpp.llama_token * (len(raw) + 16))()  # every token is at least one byte
        n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buf, len(buf), False, special)
        if n < 0:
            raise ValueError(f"could not tokenize {text[:40]!r}")
        return list(buf[:n])

    def piece(self, tok: int) -> str:
        """The text of one token (cached)."""
        if tok not in self._pieces:
            buf = ctypes.create_string_buffer(128)
            n = llama_cpp.llama_token_to_piece(self._vocab, tok, buf, len(buf), 0, False)
            self._pieces[tok] = buf.raw[:max(n, 0)].decode("utf-8", errors="replace")
        return self._pieces[tok]

    def sample(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float, seed: int,
               eos: set[int], stop=None) -> list[list[tuple[list[int], list[float]]]]:
        """-> [prompt][sample] (token ids, log-prob of each under the sampling distribution).

        A sequence ends at a token in `eos` (kept), when `stop(token_ids)` is true, or at
        `max_new_tokens`.
        """
        groups, _ = self.sample_with_knob(prompts, n, max_new_tokens, temperature, seed, eos, stop)
        return groups

    def sample_with_knob(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float,
                         seed: int, eos: set[int], stop=None, *, help_bias: float | None = None,
                         triggers: tuple[list[int], list[int]] | None = None, line_reach: float = 0.0,
                         candidates: list | None = None):
        """`sample`, and with `help_bias` the help knob (collab.help_knob) -> (groups, ask scores).

        Inside `<think>`, wherever the trigger's first token (`triggers[0]` after a newline,
        `triggers[1]` after other text) has log p >= KNOB_MIN_LOGP, the whole trigger is scored
        under the model (its tokens decoded in a scratch sequence that is dropped after), and the
        sequence asks iff logit + help_bias > 0 (greedy; sampling: with probability sigmoid): the
        trigger tokens are appended and the sequence ends. Where it does not ask, the trigger's
        first token is banned at that position. Ask scores [prompt][sample] = the largest logit
        over a sequence's candidate positions (-inf: none); all -inf without the knob. With the
        knob, `stop` is the trigger check: a sequence it ends that the knob did not ask on wrote
        the trigger by itself and asks at every bias (score +inf, `_KnobState.finish`).
        `line_reach` > 0 also makes a line start whose first token has log p >= KNOB_MIN_LOGP -
        line_reach a candidate (a large bias can make a rare trigger likely there; the trainer's
        rollout knob uses it, trainer/knob_loop.py). A list given as `candidates` is extended with,
        per sequence (prompt-major), every candidate position met: (token index, ask score, the
        trigger's ids there, their log-probs), which lets a caller decide the asks after decoding
        with every ask refused (help_bias -inf; trainer/knob_loop.py's knob_mode "step").
        """
        steps = self.steps_with_knob(prompts, n, max_new_tokens, temperature, seed, eos, stop,
                                     help_bias=help_bias, triggers=triggers, line_reach=line_reach,
                                     candidates=candidates)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def steps_with_knob(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float,
                        seed: int, eos: set[int], stop=None, *, help_bias: float | None = None,
                        triggers: tuple[list[int], list[int]] | None = None, line_reach: float = 0.0,
                        candidates: list | None = None
                        ) -> Generator[tuple[int, list[int]], None, tuple[list, list]]:
        """`sample_with_knob` one decoding step at a time: yields (sequence, the tokens the step
        appended: one, or the whole trigger where the knob asks) and returns what it returns.
        Closing the generator stops decoding."""
        n_seqs = len(prompts) * n
        need = sum(len(p) for p in prompts) + n_seqs * max_new_tokens
        knob = help_bias is not None
        if knob and not (triggers and all(triggers)):
            raise ValueError("the help knob needs the trigger's token ids (line start, after text)")
        if n_seqs + knob > self.n_seq_max or need > self.n_ctx:
            raise ValueError(f"{n_seqs} sequences needing {need} KV cells exceed n_seq_max={self.n_seq_max} / "
                             f"n_ctx={self.n_ctx}")
        rng = np.random.default_rng(seed)
        mem = llama_cpp.llama_get_memory(self._ctx)
        llama_cpp.llama_memory_clear(mem, True)
        knob_state = (_KnobState(self, triggers, help_bias, [len(prompts[s // n]) for s in range(n_seqs)],
                                 max_new_tokens, line_reach) if knob else None)
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
            logits = logits.copy() if knob else logits
            for s in range(b * n, (b + 1) * n):
                self._step(s, toks, logps, logits, temperature, rng, knob_state)
                yield s, toks[s][:]
        plen = [len(prompts[s // n]) for s in range(n_seqs)]
        asked = knob_state.asked if knob else [False] * n_seqs
        live = [s for s in range(n_seqs) if not (asked[s] or self._done(toks[s], max_new_tokens, eos, stop))]
        while live:
            self._decode([(toks[s][-1], plen[s] + len(toks[s]) - 1, s, True) for s in live])
            logits = [self._logits(i).copy() if knob else self._logits(i) for i in range(len(live))]
            for i, s in enumerate(live):
                had = len(toks[s])
                self._step(s, toks, logps, logits[i], temperature, rng, knob_state)
                yield s, toks[s][had:]
            live = [s for s in live if not (asked[s] or self._done(toks[s], max_new_tokens, eos, stop))]
        if knob_state is not None:
            for s in range(n_seqs):
                knob_state.finish(s, len(toks[s]), bool(toks[s]) and stop is not None and stop(toks[s]))
        scores = knob_state.scores if knob_state else [-math.inf] * n_seqs
        if candidates is not None:
            candidates.extend(knob_state.candidates if knob_state else [[] for _ in range(n_seqs)])
        return ([[(toks[s], logps[s]) for s in range(b * n, (b + 1) * n)] for b in range(len(prompts))],
                [scores[b * n:(b + 1) * n] for b in range(len(prompts))])

    def _step(self, s: int, toks, logps, logits: np.ndarray, temperature: float, rng, knob_state) -> None:
        """Append sequence s's next token (or, where the knob says ask, the whole trigger).

        At a candidate position (the trigger may start and its first token has log p >=
        KNOB_MIN_LOGP) the whole trigger is scored and the knob decides; where it does not ask,
        the first token is banned there.
        """
        trig = knob_state.trigger_here(s, len(toks[s])) if knob_state is not None else None
        first = None if trig is None else float(logits[trig[0]] - _logsumexp(logits))
        floor = KNOB_MIN_LOGP - (knob_state.line_reach if trig is knob_state.triggers[0] else 0.0) \
            if trig is not None else KNOB_MIN_LOGP
        if first is None or first < floor:
            self._push(toks[s], logps[s], logits, temperature, rng)
            if knob_state is not None:
                knob_state.advance(s, toks[s][-1])
            return
        lp = [first] + self._trigger_logprobs(s, trig, knob_state.plen[s] + len(toks[s]))
        score = ask_logit(min(0.0, sum(lp)))
        knob_state.scores[s] = max(knob_state.scores[s], score)
        knob_state.candidates[s].append((len(toks[s]), score, trig, lp))
        z = score + knob_state.bias
        ask = z > 0 if temperature <= 0 else (z > -700 and rng.random() < 1.0 / (1.0 + math.exp(-z)))
        if ask:
            toks[s].extend(trig)
            logps[s].extend(lp)
            knob_state.asked[s] = True
            return
        logits = logits.copy()
        logits[trig[0]] = -np.inf  # not here: the trigger may not start at this position
        self._push(toks[s], logps[s], logits, temperature, rng)
        knob_state.advance(s, toks[s][-1])

    def _trigger_logprobs(self, s: int, trig: list[int], pos: int) -> list[float]:
        """log p of trigger tokens 2.. after sequence s + trig[0], decoded in a scratch sequence."""
        if len(trig) < 2:
            return []
        mem, scratch = llama_cpp.llama_get_memory(self._ctx), self.n_seq_max - 1
        llama_cpp.llama_memory_seq_cp(mem, s, scratch, -1, -1)
        self._decode([(t, pos + j, scratch, True) for j, t in enumerate(trig[:-1])])
        lp = []
        for j, t in enumerate(trig[1:]):
            row = self._logits(j)
            lp.append(float(row[t] - _logsumexp(row)))
        llama_cpp.llama_memory_seq_rm(mem, scratch, -1, -1)
        return lp

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


@dataclass(frozen=True)
class KnobAnswer:
    text: str  # the response, cut after the trigger when it asked
    asked: bool
    score: float  # ask score: the largest trigger logit over its candidate positions (-inf: none)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish: str = "stop"  # "help" | "stop" (EOS) | "length"


class KnobDecoder:
    """Chat prompts -> greedy (or sampled) answers with the help knob, on one BatchSampler.

    `decode(..., help_bias=-inf)` never asks and returns each query's ask score along the path it
    takes; `decode(..., help_bias=b)` asks exactly on the queries whose score + b > 0
    (collab.help_knob). A path that writes the trigger by itself, where the knob does not decide
    (other tokens, or mid-line), asks at every bias: its score is +inf (the sampler's rule).
    Prompts go through the GGUF's own chat template, as on the device.
    """

    def __init__(self, model_path: str, *, adapter_path: str | None = None, threads: int = 2,
                 n_seq_max: int = 16, n_ctx: int = 8192):
        self.sampler = BatchSampler(model_path, n_seq_max=n_seq_max, n_ctx=n_ctx, threads=threads)
        if adapter_path:
            self.sampler.set_adapter(adapter_path)
        model = self.sampler._model
        vocab = self.sampler._vocab
        buf = ctypes.create_string_buffer(1 << 16)
        if llama_cpp.llama_model_meta_val_str(model, b"tokenizer.chat_template", buf, len(buf)) < 0:
            raise ValueError(f"{model_path} has no tokenizer.chat_template in its metadata")
        eos, bos = llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_bos(vocab)
        self._formatter = Jinja2ChatFormatter(buf.value.decode("utf-8"), eos_token=self.sampler.piece(eos),
                                              bos_token=self.sampler.piece(bos))
        self.eos = {t for t in (eos, llama_cpp.llama_vocab_eot(vocab)) if t >= 0}
        self.triggers = (self.sampler.tokenize(HELP_TRIGGER), self.sampler.tokenize(" " + HELP_TRIGGER))

    def close(self) -> None:
        self.sampler.close()

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """Chat-template rendering of the messages, tokenized (special tokens parsed)."""
        return self.sampler.tokenize(self._formatter(messages=messages).prompt, special=True)

    def _trigger_seen(self, toks: list[int]) -> bool:
        return HELP_TRIGGER in "".join(self.sampler.piece(t) for t in toks[-_TRIGGER_WINDOW:])

    def decode(self, conversations: list[list[dict[str, str]]], *, max_new_tokens: int, help_bias: float | None,
               temperature: float = 0.0, seed: int = 0, per_call: int | None = None) -> list[KnobAnswer]:
        """One answer per conversation; `help_bias=None` decodes without the knob (plain).

        Up to `per_call` conversations share one llama.cpp batch (default: as many as fit). A
        sequence that asks leaves the batch, and llama.cpp's logits can move in the last bits with
        the batch size; `per_call=1` makes each answer independent of the others, exactly."""
        prompts = [self.prompt_tokens(m) for m in conversations]
        per_call = per_call or max(1, min(self.sampler.n_seq_max - 1,
                                          self.sampler.n_ctx // (max(map(len, prompts)) + max_new_tokens)))
        out: list[KnobAnswer] = []
        for lo in range(0, len(prompts), per_call):
            groups, scores = self.sampler.sample_with_knob(
                prompts[lo:lo + per_call], 1, max_new_tokens, temperature, seed + lo, self.eos,
                stop=self._trigger_seen, help_bias=help_bias, triggers=self.triggers)
            for prompt, (toks, _), (score,) in zip(prompts[lo:lo + per_call], (g[0] for g in groups), scores):
                out.append(self._answer(prompt, toks, score))
        return out

    def stream(self, messages: list[dict[str, str]], *, max_new_tokens: int, help_bias: float | None,
               temperature: float = 0.0, seed: int = 0) -> Generator[str, None, KnobAnswer]:
        """`decode` of one conversation, streamed: yields each step's text (the trigger's included
        where it asks) and returns the same KnobAnswer as `decode([messages], ...)`, token for
        token. Closing the generator stops decoding."""
        prompt = self.prompt_tokens(messages)
        steps = self.sampler.steps_with_knob([prompt], 1, max_new_tokens, temperature, seed, self.eos,
                                             stop=self._trigger_seen, help_bias=help_bias, triggers=self.triggers)
        try:
            while True:
                try:
                    _, new = next(steps)
                except StopIteration as done:
                    groups, scores = done.value
                    break
                text = "".join(self.sampler.piece(t) for t in new if t not in self.eos)
                if text:
                    yield text
        finally:
            steps.close()
        return self._answer(prompt, groups[0][0][0], scores[0][0])

    def _answer(self, prompt: list[int], toks: list[int], score: float) -> KnobAnswer:
        text = "".join(self.sampler.piece(t) for t in toks if t not in self.eos)
        local, asked = split_at_trigger(text)
        finish = "help" if asked else ("stop" if toks and toks[-1] in self.eos else "length")
        return KnobAnswer(local + HELP_TRIGGER if asked else text, asked, score, len(prompt), len(toks), finish)
