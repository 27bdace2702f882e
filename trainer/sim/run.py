"""The simulator's driver: one run of the dual loop on the game, top to bottom like trainer/train.py.

Per step:  sample B prompts x G responses from the policy (game.sample_step)
           -> advantages with the trainer's method (make_method: dual advantages, cost baseline)
           -> eq. 8 gradient (game.grpo_gradient) -> grad-norm clip -> Adam/SGD on the logits
              (no step on an all-zero batch with train.skip_zero_steps)
           -> lambda with the trainer's controller (make_controller) from the batch's ratio
           -> a metrics record with the fields of a real run's metrics.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.dual import make_controller
from trainer.methods.da_grpo import make_method
from trainer.sim import game
from trainer.sim.config import SimConfig
from trainer.sim.optim import Adam, Sgd, clip_grad_norm


def simulate(cfg: SimConfig, progress: bool = False) -> list[dict]:
    """Run the configured steps -> one record per step (metrics.jsonl fields, plus the policy)."""
    tc, gc = cfg.train, cfg.sim
    rng = np.random.default_rng(tc.seed)
    p, weights = np.array(gc.p_local), np.array(gc.class_weights())
    logits = game.ask_logits(np.full(len(p), gc.ask_init))  # (K, 2)
    method, dual = make_method(tc), make_controller(tc)
    opt = Adam(tc.lr, tc.weight_decay) if gc.optimizer == "adam" else Sgd(tc.lr)
    records = []
    for step in _steps(cfg.total_steps(), progress):
        tau, lam = cfg.tau_at(step), dual.lam
        if gc.policy == "best_response":
            q = game.best_response(p, lam, gc.cloud_accuracy, gc.br_temperature)
            probs = np.stack([1 - q, q], axis=-1)
        else:
            probs = game.softmax(logits)
        s = game.sample_step(rng, probs[:, game.ASK], p, weights, tc.batch_prompts, tc.G,
                             gc.cloud_accuracy, gc.format_fail)
        method.begin_step(tau=tau)
        adv = method.advantages(s["rewards"], s["costs"], lam)  # (B, G)
        grad_norm = 0.0
        if gc.policy == "learn" and (np.any(adv) or not tc.skip_zero_steps):
            grad, grad_norm = clip_grad_norm(-game.grpo_gradient(probs, s["classes"], s["asks"], adv),
                                             tc.max_grad_norm)
            logits = opt.step(logits, grad)
        ratio = float(s["costs"].mean())
        dual.update(ratio, tau)
        method.end_step(ratio)
        records.append(_record(step, tau, lam, dual.lam, ratio, s, adv, grad_norm, probs, weights, gc.format_fail))
    return records


def _record(step, tau, lam, lam_next, ratio, s, adv, grad_norm, probs, weights, format_fail) -> dict:
    n = s["costs"].size
    return {
        "step": step + 1, "phase": 0, "phase_name": "sim", "task": "sim", "tau": tau, "lambda": lam,
        "lambda_next": lam_next, "collab_ratio": ratio, "collab_ratio_device": ratio,
        "help_requests": int(s["costs"].sum()), "responses": n, "help_triggers": int(s["asks"].sum()),
        "cloud_queries": int(s["asks"].any(axis=1).sum()), "cloud_refused": 0,
        "reward_mean": float(s["rewards"].mean()), "cost_mean": ratio, "accuracy": float(s["correct"].mean()),
        "format_rate": float(s["format_ok"].mean()), "adv_abs_mean": float(np.abs(adv).mean()),
        "loss": None, "grad_norm": grad_norm, "tokens_per_s": None,
        "ask_prob": [round(float(x), 5) for x in probs[:, game.ASK]],
        "expected_ratio": game.expected_ratio(probs[:, game.ASK], weights, format_fail),
    }


def segment_gaps(records: list[dict], segment_steps: int) -> list[dict]:
    """Per tau segment, over its last quarter: gap = mean |ratio - tau|, bias = |mean ratio - tau|."""
    out = []
    for first in range(0, len(records), segment_steps):
        seg = records[first: first + segment_steps]
        tail = seg[len(seg) - max(1, len(seg) // 4):]
        ratios = np.array([r["collab_ratio"] for r in tail])
        tau = seg[0]["tau"]
        out.append({"tau": tau, "gap": float(np.abs(ratios - tau).mean()), "bias": float(abs(ratios.mean() - tau)),
                    "ratio_mean": float(ratios.mean()), "lambda_end": seg[-1]["lambda_next"]})
    return out


def summarize(records: list[dict], cfg: SimConfig) -> dict:
    segs = segment_gaps(records, cfg.sim.segment_steps)
    return {"segments": segs, "gap": float(np.mean([s["gap"] for s in segs])),
            "bias": float(np.mean([s["bias"] for s in segs])),
            "accuracy": float(np.mean([r["accuracy"] for r in records])), "lambda_end": records[-1]["lambda_next"]}


def write_run(cfg: SimConfig, out: Path, progress: bool = False) -> dict:
    """Simulate into OUT: config.json, metrics.jsonl, summary.json, lambda.png and ratio.png (trainer/plots.py)."""
    from trainer.plots import plot_run

    out.mkdir(parents=True, exist_ok=True)
    records = simulate(cfg, progress)
    (out / "config.json").write_text(cfg.model_dump_json(indent=1) + "\n")
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = summarize(records, cfg)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    summary["plots"] = [str(p) for p in plot_run(out)]
    return summary


def _steps(total: int, progress: bool):
    if not progress:
        return range(total)
    from tqdm import tqdm

    return tqdm(range(total), desc="simulate", unit="step", dynamic_ncols=True)
