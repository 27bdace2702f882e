"""Evaluation rules the trainer does not run itself: the cloud alone, and routed local/cloud answers.

Every method is evaluated at each phase end on the test split of every task seen so far (eval_n
examples, greedy): `local` = accuracy over the queries answered locally without help, `joint` =
accuracy over all queries with the cloud answering the offloaded ones.
"""

from __future__ import annotations

from trainer.config import RunConfig
from trainer.evaluate import test_examples


def accuracy(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def routed_metrics(local_ok: list[bool], cloud_ok: list[bool], offload: list[bool]) -> dict:
    """local: accuracy over kept queries; joint: offloaded ones answered by the cloud."""
    n = len(local_ok)
    joint = [c if o else l for l, c, o in zip(local_ok, cloud_ok, offload)]
    kept = [l for l, o in zip(local_ok, offload) if not o]
    return {"n": n, "local_n": len(kept), "local_accuracy": accuracy(kept), "joint_accuracy": accuracy(joint),
            "collab_ratio": sum(offload) / n}


def cloud_answers(cfg: RunConfig, examples, tag: str) -> list[bool]:
    """Whether the configured cloud answers each whole query correctly (no local prefix)."""
    from collab.protocol import HELP_TRIGGER
    from collab.scoring import score
    from trainer.cloud import make_cloud
    from trainer.prompting import messages

    cloud = make_cloud(cfg.cloud, cfg.train.seed)
    out = []
    for ex in examples:
        text = cloud.assist(ex, messages(ex), idempotency_key=f"route/{tag}/{ex.id}").completion
        out.append(score(ex, f"<think>\n{HELP_TRIGGER}", text, math_grader=cfg.train.math_grader).correct)
    return out


def cloud_only_evals(cfg: RunConfig) -> dict:
    """cloud_only at every phase end: the cloud's answer on every query (local column = the same)."""
    evals = {}
    for k in range(len(cfg.phases)):
        tag = f"phase{k}_end"
        evals[tag] = {}
        for t in cfg.eval_task_names(k):
            ok = cloud_answers(cfg, test_examples(cfg, t), tag)
            evals[tag][t] = routed_metrics(ok, ok, [True] * len(ok)) | {"local_accuracy": accuracy(ok),
                                                                        "local_n": len(ok)}
    return evals


def greedy_correct(ctx, examples) -> list[bool]:
    """The local model's greedy answers, graded with no cloud (a help request stays unanswered)."""
    from collab.scoring import score
    from trainer.engines import greedy_texts

    tc = ctx.cfg.train
    texts = greedy_texts(ctx.engine, [ctx.prompt_ids(ex) for ex in examples],
                         tc.eval_max_new_tokens or tc.max_new_tokens)
    return [score(ex, text, None, math_grader=tc.math_grader).correct for ex, text in zip(examples, texts)]
