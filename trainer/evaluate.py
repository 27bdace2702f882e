"""Held-out evaluation: greedy responses, the cloud completing help requests, per-task metrics.

Per task (paper section 4): `local_accuracy` over the responses that did NOT ask for help (a
policy-dependent subset; its size is `local_n`), `joint_accuracy` over all responses with the
cloud completing the help requests, `collab_ratio` = mean cost (help requests with a valid format:
the budgeted quantity), `help_rate` = share that contained the trigger at all, `format_rate`.
Accuracy is answer correctness of the (composed) response, as in the paper's tables.

Metered like serving (edge_agent.service): every response with the trigger asks the cloud (one
Assist each, `group_help` = 1 if it is a help request in the sense of collab.help, else 0); a
refusal (enforce-mode budget spent) is a fallback to the local text, counted in `cloud_refused`;
each task's responses are then reported as usage under `eval/<tag>/<task>/usage`, the report the
Assist calls named. Keys are fixed by (tag, example), so an evaluation run again (a resume, or
`dagrpo eval --run` of the same run) replays its calls and is counted once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from collab.cloud import CloudRefused
from collab.help import is_help_request
from collab.protocol import requests_help
from collab.scoring import score
from collab.tasks.base import Example
from trainer.config import RunConfig
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
    cloud_refused: int = 0  # help requests the cloud refused (enforce mode): answered locally

    def as_dict(self) -> dict:
        return asdict(self)


def test_examples(cfg: RunConfig, task: str, split: str = "test", n: int | None = None) -> list[Example]:
    """`n` examples (default train.eval_n) of a task's split, drawn with the run's seed: with the
    test split, the held-out set of every evaluation of a run (training, `dagrpo eval`, experiments)."""
    from collab.tasks import get_task

    return get_task(task).examples(split, n=n or cfg.train.eval_n, seed=cfg.train.seed)


def test_sets(cfg: RunConfig, tasks: list[str], n: int | None = None) -> dict[str, list[Example]]:
    """The held-out test examples of each task (`test_examples`)."""
    return {t: test_examples(cfg, t, n=n) for t in tasks}


def evaluate(
    engine, prompt_ids, messages, cloud, tests: dict[str, list[Example]], *, max_new_tokens: int,
    math_grader: str, tag: str, batch_size: int = 16, help_bias: dict[str, float] | None = None,
) -> dict[str, TaskEval]:
    """`prompt_ids(ex)` / `messages(ex)` render an example; one greedy response per example (with the
    help knob at `help_bias[task]` where given: train.rollout_knob)."""
    results = {}
    for task, examples in tests.items():
        texts = greedy_texts(engine, [prompt_ids(ex) for ex in examples], max_new_tokens, batch_size,
                             help_bias=(help_bias or {}).get(task))
        report_key = f"eval/{tag}/{task}/usage"
        scored, refused = [], 0
        for ex, text in zip(examples, texts):
            cloud_text = None
            if requests_help(text):
                try:
                    cloud_text = cloud.assist(ex, messages(ex), idempotency_key=f"eval/{tag}/{ex.id}",
                                              group_help=int(is_help_request(text, ex.kind)), group_size=1,
                                              report_key=report_key).completion
                except CloudRefused:
                    refused += 1
            scored.append(score(ex, text, cloud_text, math_grader=math_grader))
        cloud.report_usage(task, len(scored), sum(s.help_request for s in scored), idempotency_key=report_key)
        results[task] = summarize(task, scored, refused)
    return results


def summarize(task: str, scored: list, cloud_refused: int = 0) -> TaskEval:
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
        cloud_refused=cloud_refused,
    )


@dataclass(frozen=True)
class SampledHelp:
    """How often the model asks when it samples as in training: K responses per held-out query.

    `sampled_collab_ratio` is the budgeted quantity (mean cost, eq. 14) over all n*K responses,
    with its 95% Wilson interval; `sampled_help_rate` counts every trigger; `sampled_local_accuracy`
    is the share answered right without the cloud, over the responses that did not ask.
    """

    sampled_k: int
    sampled_n: int
    sampled_collab_ratio: float
    sampled_collab_ci: tuple[float, float]
    sampled_help_rate: float
    sampled_local_accuracy: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def sampled_help(
    engine, prompt_ids, tests: dict[str, list[Example]], *, k: int, max_new_tokens: int, temperature: float,
    math_grader: str, batch_size: int = 4, help_bias: dict[str, float] | None = None,
) -> dict[str, SampledHelp]:
    """`k` sampled responses per example; scored on the local text alone (cost needs no cloud).
    With `help_bias[task]` the responses are sampled with the help knob (train.rollout_knob)."""
    from trainer.intervals import wilson_interval

    results = {}
    for task, examples in tests.items():
        scored = []
        bias = (help_bias or {}).get(task)
        knob = {} if bias is None else {"help_bias": bias}
        for i in range(0, len(examples), batch_size):
            chunk = examples[i:i + batch_size]
            out = engine.generate([prompt_ids(ex) for ex in chunk], k, max_new_tokens, temperature, **knob)
            scored += [score(ex, r.text, None, math_grader=math_grader) for ex, group in zip(chunk, out) for r in group]
        n, asks = len(scored), int(sum(s.cost for s in scored))
        local = [s for s in scored if not s.requests_help]
        results[task] = SampledHelp(
            sampled_k=k, sampled_n=n, sampled_collab_ratio=asks / n, sampled_collab_ci=wilson_interval(asks, n),
            sampled_help_rate=sum(s.requests_help for s in scored) / n,
            sampled_local_accuracy=sum(s.correct for s in local) / len(local) if local else None,
        )
    return results
