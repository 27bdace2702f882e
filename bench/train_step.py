"""Step-time breakdown of DA-GRPO training on SmolLM2-135M (or --model), printed as a table.

    python bench/train_step.py [--steps 3] [--G 4] [--B 2] [--max-new-tokens 96] [--task math]

Each step: rollout (B*G sampled responses), cloud + reward (reference cloud, scoring), advantages,
forward/backward + optimizer (LoRA), and generated tokens/s. The first step is reported separately
(warm-up); the table averages the others. Loading the model is timed on its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

FIELDS = ("t_rollout_s", "t_cloud_reward_s", "t_advantage_s", "t_update_s", "t_step_s", "tokens_per_s",
          "response_tokens_mean", "help_triggers", "format_rate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=3)
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
    from trainer.train import setup, train_pools, train_step

    cfg = load_config(None, [
        f'model.name_or_path="{args.model}"', f"train.G={args.G}", f"train.batch_prompts={args.B}",
        f"train.max_new_tokens={args.max_new_tokens}", f"train.micro_batch={args.micro_batch}",
        f'phases=[{{tasks=["{args.task}"], steps={args.steps}, tau=0.3}}]', f"model.threads={args.threads}",
        *args.set,
    ])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = setup(cfg, Path(tmp), resume=False)
        load_s = time.perf_counter() - t0
        pool = train_pools(ctx)[args.task]
        records = []
        for _ in range(args.steps):
            records.append(train_step(ctx, pool, args.task, 0.3))
            ctx.step += 1
    print(f"model={args.model} task={args.task} B={args.B} G={args.G} max_new_tokens={args.max_new_tokens} "
          f"torch threads={torch.get_num_threads()} load={load_s:.1f}s {' '.join(args.set)}")
    print(f"{'':>22}" + "".join(f"{f:>14}" for f in ("first step", "mean rest")))
    rest = records[1:] or records
    for f in FIELDS:
        first, mean = records[0][f], sum(r[f] for r in rest) / len(rest)
        print(f"{f:>22}{first:>14.3f}{mean:>14.3f}")


if __name__ == "__main__":
    main()
