"""Step-time breakdown of DA-GRPO training on SmolLM2-135M (or --model), printed as a table.

    python bench/train_step.py [--steps 2] [--G 4] [--B 2] [--max-new-tokens 96] [--task math] [--threads 1]

Times each component of a training step with the trainer's own functions: rollout (B*G sampled
responses, tokens/s), cloud + reward (reference cloud, `collab.scoring.score`), advantages, and
the policy update (forward/backward + AdamW on the LoRA). When every advantage is zero (the
untrained SmolLM2 rarely keeps the format, so all rewards are -0.1) the trainer skips the
backward; the bench then substitutes centred random advantages so the update is still timed, and
says so. The first step is shown separately (warm-up); the last column averages the others.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--task", default="math")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    args = ap.parse_args()

    import torch

    from trainer.config import load_config
    from trainer.context import setup, train_pools
    from trainer.step import collect, policy_update

    cfg = load_config(None, [
        f'model.name_or_path="{args.model}"', f"train.G={args.G}", f"train.batch_prompts={args.B}",
        f"train.max_new_tokens={args.max_new_tokens}", f"train.micro_batch={args.micro_batch}",
        f'phases=[{{tasks=["{args.task}"], steps={args.steps}, tau=0.3}}]', f"model.threads={args.threads}",
        *args.set,
    ])
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = setup(cfg, Path(tmp), resume=False)
        load_s = time.perf_counter() - t0
        pool = train_pools(ctx)[args.task]
        for step in range(args.steps):
            examples = [pool[i] for i in ctx.data_rng.choice(len(pool), size=args.B, replace=False)]
            prompts = [ctx.prompt_ids(ex) for ex in examples]
            t1 = time.perf_counter()
            rollouts = ctx.engine.generate(prompts, args.G, args.max_new_tokens, 1.0)
            t2 = time.perf_counter()
            scored, _, _ = collect(ctx, examples, rollouts, key=f"bench/{step}")
            t3 = time.perf_counter()
            adv = ctx.method.advantages(np.array([[s.reward for s in g] for g in scored]),
                                        np.array([[s.cost for s in g] for g in scored]), ctx.lam)
            synthetic = not np.any(adv)
            if synthetic:
                adv = rng.normal(size=adv.shape)
                adv -= adv.mean(axis=1, keepdims=True)
            t4 = time.perf_counter()
            policy_update(ctx, prompts, rollouts, adv)
            t5 = time.perf_counter()
            tokens = sum(len(r.token_ids) for g in rollouts for r in g)
            flat = [s for g in scored for s in g]
            rows.append({
                "rollout_s": t2 - t1, "cloud_reward_s": t3 - t2, "advantage_s": t4 - t3, "fwd_bwd_step_s": t5 - t4,
                "step_s": t5 - t1, "gen_tokens_per_s": tokens / (t2 - t1), "response_tokens": tokens / len(flat),
                "train_tokens_per_s": (tokens + sum(len(p) for p in prompts) * args.G) / (t5 - t4),
                "help_triggers": sum(s.requests_help for s in flat), "format_rate": sum(s.format_ok for s in flat) / len(flat),
                "synthetic_adv": float(synthetic),
            })
    print(f"model={args.model} task={args.task} B={args.B} G={args.G} max_new_tokens={args.max_new_tokens} "
          f"torch threads={torch.get_num_threads()} load={load_s:.1f}s {' '.join(args.set)}")
    print(f"{'':>20}{'first step':>12}{'mean rest':>12}")
    rest = rows[1:] or rows
    for key in rows[0]:
        print(f"{key:>20}{rows[0][key]:>12.3f}{sum(r[key] for r in rest) / len(rest):>12.3f}")


if __name__ == "__main__":
    main()
