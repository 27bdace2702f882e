"""Our DA-GRPO step vs TRL's GRPOTrainer on the same problem, alternating in one process.

    pip install -r bench/requirements-trl.txt
    python bench/train_vs_trl.py [--steps 3] [--G 4] [--B 2] [--max-new-tokens 64] [--threads 2]

Same for both: SmolLM2-135M-Instruct in float32 (dequantized from the GGUF), the same fresh LoRA
(ModelConfig defaults: r 16, alpha 32, all attention/MLP projections, seed 0), the same prompts
(the task's train examples with the paper's messages and the model's chat template), G, max new
tokens, temperature 1 with no top-k/top-p, lr, grad clip, one optimizer step per batch, no KL.
The reward is DA-GRPO's shaped reward r - lambda*c with lambda fixed (ours: eta_lambda = 0), given
to TRL as a reward function with scale_rewards="none" and loss_type="dr_grpo" (token log-probs
summed with a constant normaliser: eq. 8's direction; ours scales by G/(G-1)/B).
Ours: train.engine = "llamacpp" (GGUF + exported LoRA, batched, shared prompt KV) and the lean
pass; TRL: transformers `generate` and its own loss. TRL does not stop at the help trigger (it has
no such rule); ours does, as the protocol says.

Timeline: TRL's Trainer drives its steps; a callback runs one of our steps after each TRL step, so
the two alternate under the same machine load. The first step of each is a warm-up (not
averaged). Seconds per step are wall-clock per step (rollout + reward + update); rollout tokens/s
counts completion tokens over generation time; peak RSS is the process's resident memory sampled
every 10 ms during each step (one process holds both models, so also run --only ours for the
standalone figure). Finally the llama.cpp ceiling: the same B*G sequences decoded to max new
tokens as one batch with the LoRA on, no stopping (the most tokens/s the rollout could reach).

Equal work: TRL's GRPOConfig turns gradient checkpointing on by default; it is off here as in
ours. Ours skips the forward/backward when all advantages are 0 (a small model mostly scores -0.1
on every response); unless --allow-skip, such steps get +-1e-6 advantages so ours does the same
forward/backward work as TRL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class PeakRSS:
    """Max resident set size (bytes) of this process while the block runs, sampled every 10 ms."""

    def __enter__(self):
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ours_setup(args, out: Path):
    from trainer.config import load_config
    from trainer.context import setup, train_pools

    cfg = load_config(None, [
        'model.name_or_path="smollm2"', 'model.dtype="float32"', 'model.device="cpu"', f"train.G={args.G}",
        f"train.batch_prompts={args.B}", f"train.max_new_tokens={args.max_new_tokens}", "train.temperature=1.0",
        f"train.lr={args.lr}", "train.eta_lambda=0.0", f"train.lambda_init={args.lam}", 'train.engine="llamacpp"',
        f"train.engine_threads={args.threads}", "train.lean_pass=true", f"train.micro_batch={args.B * args.G}",
        "train.eval_at_start=false", f'phases=[{{tasks=["{args.task}"], steps=1000, tau=0.3}}]',
    ])
    ctx = setup(cfg, out, resume=False)
    if not args.allow_skip:
        inner = ctx.method.advantages

        def advantages(rewards, costs, lam):
            """TRL runs forward/backward even when every advantage is 0; ours skips it. For equal
            work, all-zero advantages become +-1e-6 (a ~zero update, like TRL's exact zero)."""
            adv = inner(rewards, costs, lam)
            return adv if np.any(adv) else np.resize([1e-6, -1e-6], adv.shape)

        ctx.method.advantages = advantages
    return ctx, train_pools(ctx)[args.task]


def trl_trainer(args, ctx, pool, out: Path, on_step_end):
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from collab.protocol import requests_help
    from collab.scoring import score
    from trainer.models import load_policy

    model, tokenizer = load_policy(ctx.cfg.model, seed=ctx.cfg.train.seed)
    by_id = {ex.id: ex for ex in pool}

    def shaped_reward(prompts, completions, ex_id, **_):
        """DA-GRPO's r - lambda*c per completion; one cloud query per group that asked (as ours)."""
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        rewards, cloud = [], {}
        for text, eid in zip(texts, ex_id):
            ex = by_id[eid]
            if requests_help(text) and eid not in cloud:
                cloud[eid] = ctx.cloud.assist(ex, ctx.messages(ex), idempotency_key=f"trl/{time.time_ns()}",
                                              group_help=1, group_size=args.G).completion
            s = score(ex, text, cloud.get(eid) if requests_help(text) else None, math_grader="exact")
            rewards.append(s.reward - args.lam * s.cost)
        return rewards

    data = Dataset.from_list([{"prompt": ctx.messages(ex), "ex_id": ex.id} for ex in pool])
    config = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.B * args.G, num_generations=args.G,
        max_completion_length=args.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, beta=0.0,
        loss_type="dr_grpo", scale_rewards="none", learning_rate=args.lr, lr_scheduler_type="constant",
        weight_decay=0.0, max_grad_norm=1.0, num_iterations=1, max_steps=args.steps + 1, logging_steps=1,
        report_to="none", use_cpu=True, bf16=False, save_strategy="no", seed=ctx.cfg.train.seed,
        dataloader_num_workers=0, disable_dropout=True, gradient_checkpointing=False,  # TRL's default is on
    )

    class Alternate(TrainerCallback):
        def on_step_end(self, *_, **__):
            on_step_end()

    trainer = GRPOTrainer(model=model, reward_funcs=shaped_reward, args=config, train_dataset=data,
                          processing_class=tokenizer, callbacks=[Alternate()])
    return trainer, model, tokenizer


class TimedGenerate:
    """Wraps a model's generate: seconds spent and completion tokens (up to and incl. EOS) produced."""

    def __init__(self, model, eos_ids: set[int]):
        self.inner, self.eos, self.seconds, self.tokens = model.generate, eos_ids, 0.0, 0
        model.generate = self

    def __call__(self, *a, **kw):
        t = time.perf_counter()
        out = self.inner(*a, **kw)
        self.seconds += time.perf_counter() - t
        width = kw["input_ids"].shape[1]
        for row in out[:, width:].tolist():
            cut = next((k + 1 for k, tok in enumerate(row) if tok in self.eos), len(row))
            self.tokens += cut
        return out


def llama_ceiling(ctx, prompts, args) -> float:
    """Tokens/s of B*G sequences decoded to max_new_tokens as one llama.cpp batch, LoRA on."""
    ctx.engine.sync_adapter()
    best = 0.0
    for seed in range(2):
        t = time.perf_counter()
        out = ctx.engine.sampler.sample(prompts, args.G, args.max_new_tokens, 1.0, seed, eos=set())
        n = sum(len(ids) for g in out for ids, _ in g)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="measured steps each (after one warm-up step each)")
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--B", type=int, default=2, help="prompts per step")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--task", default="math")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lam", type=float, default=0.5, help="the fixed lambda of r - lambda*c")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (torch uses its default)")
    ap.add_argument("--only", choices=("both", "ours"), default="both")
    ap.add_argument("--allow-skip", action="store_true",
                    help="let ours skip the update of all-zero-advantage steps (TRL never skips)")
    args = ap.parse_args()

    import torch

    from trainer.step import train_step

    tmp = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    t0 = time.perf_counter()
    ctx, pool = ours_setup(args, tmp / "ours")
    print(f"setup ours {time.perf_counter() - t0:.1f}s", flush=True)
    ours: list[dict] = []

    def our_step():
        with PeakRSS() as mem:
            t = time.perf_counter()
            rec = train_step(ctx, pool, args.task, 0.3)
            ctx.step += 1
        ours.append({"s": time.perf_counter() - t, "tok": rec["response_tokens_mean"] * rec["responses"],
                     "gen_s": rec["t_rollout_s"], "rss": mem.peak, "kl": rec.get("sampler_kl")})
        print(f"  ours step {len(ours)}: {ours[-1]['s']:.1f}s", flush=True)

    trl: list[dict] = []
    if args.only == "both":
        state = {"last": 0.0, "mem": None}

        def after_trl_step():
            state["mem"].__exit__(None, None, None)
            now = time.perf_counter()
            trl.append({"s": now - state["last"], "tok": timer.tokens, "gen_s": timer.seconds, "rss": state["mem"].peak})
            timer.tokens, timer.seconds = 0, 0.0
            print(f"  trl step {len(trl)}: {trl[-1]['s']:.1f}s", flush=True)
            our_step()
            state["mem"] = PeakRSS().__enter__()
            state["last"] = time.perf_counter()

        trainer, model, tokenizer = trl_trainer(args, ctx, pool, tmp / "trl", after_trl_step)
        timer = TimedGenerate(model, set(trainer.eos_token_ids))
        state["mem"], state["last"] = PeakRSS().__enter__(), time.perf_counter()
        trainer.train()
    else:
        for _ in range(args.steps + 1):
            our_step()
    prompts = [ctx.prompt_ids(ex) for ex in pool[: args.B]]
    ceiling = llama_ceiling(ctx, prompts, args)

    print(f"\nSmolLM2-135M fp32 + LoRA r={ctx.cfg.model.lora_r}, task={args.task}, B={args.B}, G={args.G}, "
          f"max_new_tokens={args.max_new_tokens}, torch threads={torch.get_num_threads()}, "
          f"llama.cpp threads={args.threads}, {args.steps} measured steps each after 1 warm-up")
    print(f"{'':<10}{'s/step':>10}{'tokens/step':>13}{'rollout tok/s':>15}{'peak RSS GB':>13}")
    rows = [("ours", ours[1:])] + ([("trl", trl[1:])] if trl else [])
    for name, recs in rows:
        s = statistics.mean(r["s"] for r in recs)
        tok = statistics.mean(r["tok"] for r in recs)
        tps = sum(r["tok"] for r in recs) / sum(r["gen_s"] for r in recs)
        print(f"{name:<10}{s:>10.2f}{tok:>13.1f}{tps:>15.1f}{max(r['rss'] for r in recs) / 2**30:>13.2f}")
    s_ours = statistics.mean(r["s"] for r in ours[1:])
    if trl:
        print(f"speed-up TRL/ours s/step: {statistics.mean(r['s'] for r in trl[1:]) / s_ours:.2f}x (goal >= 2)")
    tps_ours = sum(r["tok"] for r in ours[1:]) / sum(r["gen_s"] for r in ours[1:])
    print(f"llama.cpp batched-decode ceiling ({args.B * args.G} seqs x {args.max_new_tokens} tokens, LoRA on): "
          f"{ceiling:.1f} tok/s; ours/ceiling {tps_ours / ceiling:.2f} (goal >= 0.8)")
    kls = [r["kl"] for r in ours[1:] if r["kl"] is not None]
    print(f"sampler KL(llama.cpp || torch) per token: {statistics.mean(kls):.4f} nats" if kls else
          "sampler KL: no step had a nonzero advantage (no forward pass)")
    print(f"load average: {os.getloadavg()}")
    ctx.engine.close()


if __name__ == "__main__":
    main()
