"""SmolLM2's accuracy per difficulty level of the built-in generators, right after the format warm-up.

What the local model can do alone decides whether a budget can be met by asking on the hard
prompts only (issue 15, item 2): it runs the demo's format warm-up (format drills only), then, on
llama.cpp with the warmed-up LoRA, answers `--per-level` held-out queries of every level of math,
science, code and knowledge greedily and once sampled at temperature 1.0, without a cloud.

    PYTHONPATH=$PWD python scripts/level_accuracy.py --out docs/results/2026-12-01-track

Writes level_accuracy.json (every number) and level_accuracy.md (the table) under --out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

BASES = {"math": "collab.tasks.math_gen", "science": "collab.tasks.science", "code": "collab.tasks.code_gen",
         "knowledge": "collab.tasks.knowledge"}


def rates(examples, texts, math_grader: str) -> dict:
    """Shares over the queries: solved alone (correct and no trigger), asked, well formatted."""
    from collab.scoring import score

    scored = [score(ex, t, None, math_grader=math_grader) for ex, t in zip(examples, texts)]
    n = len(scored)
    return {"n": n, "solved": sum(s.correct and not s.requests_help for s in scored) / n,
            "asked": sum(s.cost for s in scored) / n, "format_ok": sum(s.format_ok for s in scored) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--per-level", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--set", action="append", default=[], help="override of the demo preset (key=value)")
    ap.add_argument("--tasks", default=",".join(BASES), help=f"comma-separated subset of {list(BASES)}")
    ap.add_argument("--adapter", type=Path, help="a warmed-up LoRA (e.g. a demo run's OUT/reference) "
                    "instead of fitting the demo's warm-up here")
    args = ap.parse_args()

    import torch

    from trainer.commands import demo_config
    from trainer.engines import make_engine_factory
    from trainer.models import load_policy
    from trainer.prompting import prompt_ids
    from trainer.warmup import fit_warmup, warmup_report

    cfg = demo_config(args.set)
    torch.manual_seed(cfg.train.seed)
    t0 = time.perf_counter()
    model, tok = load_policy(cfg.model, adapter=args.adapter, seed=cfg.train.seed)
    losses = None if args.adapter else fit_warmup(model, tok, list(cfg.warmup.tasks), cfg.warmup)
    model.eval()
    engine = make_engine_factory(cfg.model, cfg.train)(model, tok)
    t_warm = time.perf_counter() - t0

    table = {}
    for base in args.tasks.split(","):
        module = BASES[base]
        for level in range(1, 6):
            task = importlib.import_module(module).make_task(name=base, levels=(level,))
            examples = task.examples("test", n=args.per_level, seed=cfg.train.seed)
            prompts = [prompt_ids(tok, ex) for ex in examples]
            row = {}
            for mode, temp in (("greedy", 0.0), ("sampled", 1.0)):
                texts = []
                for i in range(0, len(prompts), 16):
                    texts += [g[0].text for g in engine.generate(prompts[i:i + 16], 1, args.max_new_tokens, temp)]
                row[mode] = rates(examples, texts, cfg.train.math_grader)
            table[f"{base}/{level}"] = row
            print(base, level, json.dumps(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    warmup = {"adapter": str(args.adapter)} if args.adapter else {
        **warmup_report(list(cfg.warmup.tasks), cfg.warmup), "losses": losses}
    record = {"warmup": warmup,
              "per_level": args.per_level, "max_new_tokens": args.max_new_tokens, "engine": cfg.train.engine,
              "math_grader": cfg.train.math_grader, "overrides": args.set, "seconds_warmup": round(t_warm, 1),
              "seconds_total": round(time.perf_counter() - t0, 1), "levels": table}
    (args.out / "level_accuracy.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["| task | level | solved alone, greedy | solved alone, T=1 | asks, greedy | asks, T=1 "
             "| format ok, greedy |",
             "|---|---|---|---|---|---|---|"]
    for key, row in table.items():
        g, s = row["greedy"], row["sampled"]
        lines.append(f"| {key.split('/')[0]} | {key.split('/')[1]} | {g['solved']:.2f} | {s['solved']:.2f} | "
                     f"{g['asked']:.2f} | {s['asked']:.2f} | {g['format_ok']:.2f} |")
    (args.out / "level_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
