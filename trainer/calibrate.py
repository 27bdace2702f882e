"""`dagrpo calibrate`: the help bias that makes a trained adapter ask on a share tau of queries.

Per task (collab.help_knob): decode the validation split greedily with every ask refused
(bias -inf) to get each query's ask score, put the bias at the (1 - tau) quantile of those
scores, then check it on a separate test split twice: the rate the test scores predict, and the
rate measured by decoding the test split with that bias. The greedy help rate of the adapter
without the knob is measured beside it (it is the same for every tau). Writes
RUN_DIR/help_bias.json (read by the edge agent and by `dagrpo export-adapter`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from collab.help_knob import calibrate_bias, help_rate
from collab.tasks import get_task
from dagrpo.errors import UserError
from trainer import prompting

HELP_BIAS_FILE = "help_bias.json"


def adapter_gguf(run_dir: Path, base_gguf: Path) -> Path:
    """RUN_DIR/adapter as a GGUF LoRA (exported once, next to the peft files)."""
    from llama_runtime.export import export_adapter

    peft_dir = run_dir / "adapter"
    if not (peft_dir / "adapter_config.json").is_file():
        raise UserError(f"{peft_dir} holds no adapter (is {run_dir} a training run?)")
    gguf = peft_dir / "adapter.gguf"
    if not gguf.is_file() or gguf.stat().st_mtime < (peft_dir / "adapter_config.json").stat().st_mtime:
        export_adapter(peft_dir, base_gguf, gguf)
    return gguf


def outcome(examples, answers, cloud, math_grader: str) -> dict:
    """Help rate, cost rate (eq. 14), joint accuracy and the accuracy over the answers kept local (no help
    request), the cloud completing help requests."""
    from collab.scoring import score

    scored = []
    for ex, a in zip(examples, answers):
        cloud_text = None
        if a.asked:
            cloud_text = cloud.assist(ex, prompting.messages(ex), idempotency_key=f"calibrate/{ex.id}").completion
        scored.append(score(ex, a.text, cloud_text, math_grader=math_grader))
    n, kept = len(scored), [s.correct for s in scored if not s.requests_help]
    return {"n": n, "help_rate": sum(s.requests_help for s in scored) / n,
            "collab_ratio": sum(s.cost for s in scored) / n, "joint_accuracy": sum(s.correct for s in scored) / n,
            "local_n": len(kept), "local_accuracy": sum(kept) / len(kept) if kept else None}


def calibrate_task(decoder, task: str, taus: list[float], *, n_val: int, n_test: int, max_new_tokens: int,
                   seed: int, cloud=None, math_grader: str = "exact", verify: bool = True) -> dict:
    """Scores on val and test, the bias per tau, predicted and decoded test help rates (and, with a
    cloud, the joint accuracy each gives)."""
    val = get_task(task).examples("val", n=n_val, seed=seed)
    test = get_task(task).examples("test", n=n_test, seed=seed)
    if not val or not test:
        raise UserError(f"task {task!r} has no val or test examples to calibrate on")
    convs = lambda exs: [prompting.messages(ex) for ex in exs]  # noqa: E731
    val_scores = [a.score for a in decoder.decode(convs(val), max_new_tokens=max_new_tokens, help_bias=-math.inf)]
    test_scores = [a.score for a in decoder.decode(convs(test), max_new_tokens=max_new_tokens, help_bias=-math.inf)]
    plain = decoder.decode(convs(test), max_new_tokens=max_new_tokens, help_bias=None)
    rows = []
    for tau in taus:
        bias = calibrate_bias(val_scores, tau)
        row = {"tau": tau, "bias": bias, "val_help_rate": help_rate(val_scores, bias),
               "test_help_rate_predicted": help_rate(test_scores, bias)}
        if verify:
            knob = decoder.decode(convs(test), max_new_tokens=max_new_tokens, help_bias=bias)
            row["test_help_rate"] = sum(a.asked for a in knob) / len(knob)
            if cloud is not None:
                row["test"] = outcome(test, knob, cloud, math_grader)
        rows.append(row)
    out = {"task": task, "n_val": len(val), "n_test": len(test), "max_new_tokens": max_new_tokens,
           "test_help_rate_no_knob": sum(a.asked for a in plain) / len(plain),
           "val_scores": val_scores, "by_tau": rows}
    if cloud is not None:
        out["test_no_knob"] = outcome(test, plain, cloud, math_grader)
    return out


def calibrate_run(run: str | Path, taus: list[float], *, tasks: list[str] | None = None, n_val: int = 128,
                  n_test: int = 128, max_new_tokens: int | None = None, threads: int = 2,
                  verify: bool = True) -> dict:
    from llama_runtime.llm import KnobDecoder
    from trainer.cloud import InProcessCloud
    from trainer.config import load_config
    from trainer.engines.llamacpp import base_gguf

    run_dir = Path(run)
    if not (run_dir / "config.toml").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.toml)")
    if not taus or any(not 0.0 <= t <= 1.0 for t in taus):
        raise UserError(f"--tau: each budget must lie in [0, 1], got {taus}")
    cfg = load_config(run_dir / "config.toml")
    names = tasks or cfg.eval_task_names(len(cfg.phases) - 1)
    gguf = base_gguf(cfg.model, cfg.train)
    decoder = KnobDecoder(str(gguf), adapter_path=str(adapter_gguf(run_dir, gguf)), threads=threads)
    tokens = max_new_tokens or cfg.train.eval_max_new_tokens or cfg.train.max_new_tokens
    cloud = InProcessCloud(accuracy=cfg.cloud.accuracy, seed=cfg.train.seed)  # the reference cloud scores
    try:
        result = {t: calibrate_task(decoder, t, taus, n_val=n_val, n_test=n_test, max_new_tokens=tokens,
                                    seed=cfg.train.seed, cloud=cloud, math_grader=cfg.train.math_grader,
                                    verify=verify) for t in names}
    finally:
        decoder.close()
    (run_dir / HELP_BIAS_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def print_calibration(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Help bias calibrated on val, checked on test (greedy)")
    for col in ("task", "tau", "bias", "val rate", "test rate (predicted)", "test rate (decoded)",
                "joint acc", "no knob: rate / joint acc"):
        table.add_column(col)
    pct = lambda d: "-" if d is None else f"{100 * d['joint_accuracy']:.1f}"  # noqa: E731
    for task, r in result.items():
        for row in r["by_tau"]:
            decoded = row.get("test_help_rate")
            table.add_row(task, f"{row['tau']:.2f}", f"{row['bias']:+.2f}", f"{row['val_help_rate']:.3f}",
                          f"{row['test_help_rate_predicted']:.3f}", "-" if decoded is None else f"{decoded:.3f}",
                          pct(row.get("test")), f"{r['test_help_rate_no_knob']:.3f} / {pct(r.get('test_no_knob'))}")
    Console().print(table)
