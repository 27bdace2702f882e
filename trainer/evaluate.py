"""Held-out evaluation: greedy responses, the cloud completing help requests, per-task metrics.

Per task (paper section 4): `local_accuracy` over the responses that did NOT ask for help (a
policy-dependent subset; its size is `local_n`), `joint_accuracy` over all responses with the
cloud completing the help requests, `collab_ratio` = mean cost (help requests with a valid format:
the budgeted quantity), `help_rate` = share that contained the trigger at all, `format_rate`.
Accuracy is answer correctness of the (composed) response, as in the paper's tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from collab.protocol import requests_help
from collab.scoring import score
from collab.tasks.base import Example
from trainer.engines import greedy_texts


@dataclass(frozen=True)
class TaskEval:
    task: str
    n: int
    local_n: int
    local_accuracy: float | None  # None when every response asked for help
    joint_accuracy: float
    collab_ratio: float
    help_rate: float
    format_rate: float

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(
    engine, prompt_ids, messages, cloud, tests: dict[str, list[Example]], *, max_new_tokens: int,
    math_grader: str, tag: str, batch_size: int = 16,
) -> dict[str, TaskEval]:
    """`prompt_ids(ex)` / `messages(ex)` render an example; one greedy response per example."""
    results = {}
    for task, examples in tests.items():
        texts = greedy_texts(engine, [prompt_ids(ex) for ex in examples], max_new_tokens, batch_size)
        scored = []
        for ex, text in zip(examples, texts):
            cloud_text = None
            if requests_help(text):
                cloud_text = cloud.assist(ex, messages(ex), idempotency_key=f"eval/{tag}/{ex.id}").completion
            scored.append(score(ex, text, cloud_text, math_grader=math_grader))
        results[task] = summarize(task, scored)
    return results


def summarize(task: str, scored: list) -> TaskEval:
    n = len(scored)
    local = [s for s in scored if not s.requests_help]
    return TaskEval(
        task=task,
        n=n,
        local_n=len(local),
        local_accuracy=sum(s.correct for s in local) / len(local) if local else None,
        joint_accuracy=sum(s.correct for s in scored) / n,
        collab_ratio=sum(s.cost for s in scored) / n,
        help_rate=sum(s.requests_help for s in scored) / n,
        format_rate=sum(s.format_ok for s in scored) / n,
    )
