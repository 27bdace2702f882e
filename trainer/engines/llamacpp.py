"""llama.cpp rollout engine: the GGUF base model plus the trainer's current LoRA, batched sampling.

Per `generate` call (once per training step, and per evaluation chunk):
  1. export  the peft LoRA's current weights -> a GGUF LoRA in a tmpfs directory
             (`save_pretrained` + `llama_runtime.export.export_adapter`, which applies the q/k row
             permutation llama.cpp's rope layout needs)
  2. swap    it into the one live llama.cpp context (no new model or context per step); the KV
             cache is cleared by the swap
  3. sample  the G completions of each prompt as one llama.cpp batch sharing the prompt's KV
             (`llama_runtime.llm.BatchSampler`), plain temperature sampling seeded from torch's RNG
             (so `train.seed` fixes it), stops at EOS and at the help trigger
  4. cut     every completion with `trainer.engines.base.truncate_response`, the torch engine's rule,
             so both engines hand the trainer the same kind of Rollout (same masks, same rewards)

The rollouts also carry each token's log-prob under the sampler (`SampledRollout.logprobs`); the
trainer's old-policy log-probs still come from torch (DESIGN section 6), and the mismatch is logged
(`trainer.mismatch`). The base model is the quantized GGUF the device serves, so the
sampler is the deployed policy, ~5e-3 nats/token away from the float32 torch policy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from collab.protocol import HELP_TRIGGER
from dagrpo.errors import UserError
from llama_runtime.export import export_adapter
from llama_runtime.llm import BatchSampler
from trainer.models import save_trained_adapter
from trainer.engines.base import Rollout, truncate_response

# Decoded tail checked for the trigger after each token, in tokens (the trigger is ~6 tokens).
_TRIGGER_WINDOW = 16
# train.rollout_knob: a line start is a candidate of the trigger down to a first-token log p of
# KNOB_MIN_LOGP - this (-20): on math SmolLM2 writes "Step k:" lines where "I" has log p ~ -10..-16,
# which a calibrated bias of +5..+10 makes a real choice (trainer/knob_loop.py).
KNOB_LINE_REACH = 12.0


@dataclass(frozen=True)
class SampledRollout(Rollout):
    logprobs: tuple[float, ...] = ()  # log q(token) under the sampling distribution, per token_ids
    ask_score: float = float("-inf")  # with the help knob: the largest trigger logit met (collab.help_knob)


def base_gguf(model_cfg, train_cfg) -> Path:
    """The GGUF the engine samples from: `train.engine_gguf`, else the SmolLM2 file for "smollm2"."""
    if train_cfg.engine_gguf:
        path = Path(train_cfg.engine_gguf)
    elif model_cfg.name_or_path == "smollm2":
        from trainer.models import smollm2_gguf_path

        path = smollm2_gguf_path()
    else:
        raise UserError(f"train.engine_gguf: the llamacpp engine needs the GGUF of {model_cfg.name_or_path!r}")
    if not path.is_file():
        raise UserError(f"train.engine_gguf: no file at {path}")
    return path


class LlamaCppEngine:
    def __init__(self, model, tokenizer, *, gguf_path: str | Path, threads: int = 2, n_seq_max: int = 16,
                 n_ctx: int = 8192):
        self.model, self.tokenizer, self.gguf_path = model, tokenizer, str(gguf_path)
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {e for e in eos + [tokenizer.eos_token_id] if e is not None}
        self.sampler = BatchSampler(self.gguf_path, n_seq_max=n_seq_max, n_ctx=n_ctx, threads=threads)
        # the help knob's trigger ids: at a line start, and after other text (collab.help_knob)
        self.triggers = (self.sampler.tokenize(HELP_TRIGGER), self.sampler.tokenize(" " + HELP_TRIGGER))
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # tmpfs: the per-step export never hits disk
        self._tmp = Path(tempfile.mkdtemp(prefix="dagrpo-lora-", dir=shm))

    def close(self) -> None:
        self.sampler.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def sync_adapter(self) -> None:
        """Export the policy's current LoRA and swap it into the sampler (clears its KV cache)."""
        save_trained_adapter(self.model, self._tmp / "peft")
        export_adapter(self._tmp / "peft", self.gguf_path, self._tmp / "lora.gguf")
        self.sampler.set_adapter(str(self._tmp / "lora.gguf"))

    def _trigger_seen(self, ids: list[int]) -> bool:
        return HELP_TRIGGER in self.tokenizer.decode(ids[-_TRIGGER_WINDOW:], skip_special_tokens=True)

    def _chunks(self, prompts: list[list[int]], n: int, max_new_tokens: int,
                knob: bool = False) -> list[list[list[int]]]:
        """Consecutive prompt chunks whose n samples fit the sampler's sequences and KV cells (the
        knob keeps one sequence for scoring the trigger)."""
        chunks, cur, cells = [], [], 0
        seqs = self.sampler.n_seq_max - knob
        for p in prompts:
            need = len(p) + n * max_new_tokens
            if need > self.sampler.n_ctx or n > seqs:
                raise UserError(f"one prompt of {len(p)} tokens x {n} samples of {max_new_tokens} tokens does not "
                                f"fit train.engine_n_ctx={self.sampler.n_ctx} / engine_n_seq_max={self.sampler.n_seq_max}")
            if cur and (cells + need > self.sampler.n_ctx or (len(cur) + 1) * n > seqs):
                chunks.append(cur)
                cur, cells = [], 0
            cur.append(p)
            cells += need
        return chunks + [cur] if cur else chunks

    def generate(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float,
                 help_bias: float | None = None) -> list[list[SampledRollout]]:
        """`n` responses per prompt; with `help_bias` the help knob decides where the trigger is
        written (llama_runtime.llm.BatchSampler.sample_with_knob; -inf: never)."""
        return self._generate(prompts, n, max_new_tokens, temperature, help_bias)[0]

    def ask_scores(self, prompts: list[list[int]], n: int, max_new_tokens: int,
                   temperature: float) -> list[list[float]]:
        """[prompt][sample] ask score (collab.help_knob) along paths decoded with every ask refused;
        +inf for a path that writes the trigger by itself (it asks whatever the bias)."""
        return self._generate(prompts, n, max_new_tokens, temperature, -float("inf"), raw=True)[1]

    def generate_at_rate(self, prompts: list[list[int]], n: int, max_new_tokens: int, temperature: float,
                         tau: float) -> tuple[list[list[SampledRollout]], float]:
        """`n` responses per prompt from the help knob at the bias b whose ask rate on these very
        paths is tau -> (rollouts, b). Every path is decoded with every ask refused and its
        candidate positions recorded; b solves mean P(ask | path) = tau
        (`collab.help_knob.calibrate_bias_paths`); then each path asks at its first candidate j
        whose draw falls below sigmoid(s_j + b) (`first_ask`): cut there, the trigger appended.
        That is a sample of the sampled knob at b, since a path that has not asked went on with the
        trigger's first token banned, as the refused one did. A refused path that writes the
        trigger by itself (other tokens, or mid-line) asks with probability 1: the sampler gives it
        a last candidate of score +inf at its end, so it is kept whole when no earlier candidate is
        drawn. ask_score: the largest candidate score of the refused path."""
        from collab.help_knob import calibrate_bias_paths, first_ask

        cands: list = []
        paths = [seq for group in self._generate(prompts, n, max_new_tokens, temperature, -float("inf"),
                                                 candidates=cands, raw=True)[0] for seq in group]
        scores = [[c[1] for c in cand] for cand in cands]
        bias = calibrate_bias_paths(scores, tau)
        draws = torch.rand(sum(map(len, scores)), dtype=torch.float64).tolist()  # the trainer's torch seed
        out, used = [], 0
        for (ids, logps), cand, sc in zip(paths, cands, scores):
            j = first_ask(sc, bias, draws[used:used + len(sc)])
            used += len(sc)
            if j is not None:  # a self-ask's candidate is the path's end: the cut keeps it whole
                k, _, trig, lp = cand[j]
                ids, logps = ids[:k] + list(trig), logps[:k] + list(lp)
            out.append(self._rollout(ids, logps, max(sc, default=-float("inf"))))
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))], bias

    def _generate(self, prompts, n, max_new_tokens, temperature, help_bias, candidates: list | None = None,
                  raw: bool = False):
        """-> ([prompt][sample] rollouts, or (ids, logps) with `raw`; [prompt][sample] ask scores).
        `candidates` (knob only) collects each sequence's candidate positions, in the same order."""
        self.sync_adapter()
        out, scores = [], []
        knob = help_bias is not None
        for chunk in self._chunks(prompts, n, max_new_tokens, knob):
            seed = int(torch.randint(0, 2**31 - 1, ()))  # follows the trainer's torch seed
            groups, sc = self.sampler.sample_with_knob(chunk, n, max_new_tokens, temperature, seed, self.eos_ids,
                                                       stop=self._trigger_seen, help_bias=help_bias,
                                                       triggers=self.triggers if knob else None,
                                                       line_reach=KNOB_LINE_REACH, candidates=candidates)
            out += groups if raw else [[self._rollout(ids, logps, a) for (ids, logps), a in zip(group, sg)]
                                       for group, sg in zip(groups, sc)]
            scores += sc
        return out, scores

    def _rollout(self, ids: list[int], logps: list[float], ask_score: float = float("-inf")) -> SampledRollout:
        r = truncate_response(ids, self.tokenizer, self.eos_ids)
        return SampledRollout(r.token_ids, r.text, r.stop, tuple(logps[: len(r.token_ids)]), ask_score)
