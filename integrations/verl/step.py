"""One verl step of DA-GRPO over plain data: rows -> groups -> cloud -> r, c -> r - lambda*c -> lambda.

A verl batch is B*G rows (responses), each with its prompt's `uid` (one uid per prompt group,
verl's GRPO grouping) and the `Example` it answers. Per training step:

  group     rows by uid, in order of first appearance (verl may have reordered rows: balance_batch)
  cloud     one Assist per group with a help request (collab.help), shared by its help-seeking
            rows; key `<step key>/<example id>/<k>` (k counts repeats of one example in a step),
            report_key the usage report of the group's task
  score     r (eq. 13), c (eq. 14) of each composed response (collab.scoring.score)
  shaped    r - lambda * c per row, lambda of this step: verl's GRPO group-centres it (Prop. B.1)
  report    one report_usage per task in the batch, key `<step key>/<task>/usage`
  dual      lambda <- controller.update(J_c_hat, tau) with J_c_hat the gateway's measured ratio
            of the step's responses (device count without a gateway), trainer.dual's controller

The same arithmetic as trainer/step.py's `collect` + `train_step`; the test holds the two to equal
numbers on one batch. Keys differ in form (`<example id>/<k>` instead of the group's position b):
verl reorders rows, so a position is not stable when a resumed step is replayed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from collab.cloud import CloudClient, CloudRefused, Telemetry
from collab.help import count_help
from collab.scoring import Scored, score
from collab.tasks.base import Example
from trainer.prompting import messages


def group_rows(uids) -> list[list[int]]:
    """Row indices per uid, groups in order of first appearance, rows in batch order."""
    groups: dict[object, list[int]] = {}
    for i, u in enumerate(uids):
        groups.setdefault(u, []).append(i)
    return list(groups.values())


def group_keys(example_ids: list[str], step_key: str) -> list[str]:
    """`<step key>/<example id>/<k>`: the k-th group of that example in the step (k from 0)."""
    seen: Counter = Counter()
    keys = []
    for eid in example_ids:
        keys.append(f"{step_key}/{eid}/{seen[eid]}")
        seen[eid] += 1
    return keys


def usage_key(step_key: str, task: str) -> str:
    return f"{step_key}/{task}/usage"


@dataclass(frozen=True)
class BatchScores:
    scored: list[Scored]  # per row, batch order
    queries: int  # Assist calls made (groups with a help request)
    refused: int  # of those, refused by the budget (enforce mode)

    @property
    def rewards(self) -> np.ndarray:  # (N,)
        return np.array([s.reward for s in self.scored], dtype=np.float64)

    @property
    def costs(self) -> np.ndarray:  # (N,)
        return np.array([s.cost for s in self.scored], dtype=np.float64)


def score_batch(cloud: CloudClient, examples: list[Example], texts: list[str], uids, step_key: str,
                math_grader: str = "exact") -> BatchScores:
    """Cloud queries (one per group with a help request) and eq. 13/14 scores of every row."""
    if not len(examples) == len(texts) == len(uids):
        raise ValueError(f"rows disagree: {len(examples)} examples, {len(texts)} texts, {len(uids)} uids")
    groups = group_rows(uids)
    for g in groups:
        if len({examples[i].id for i in g}) != 1:
            raise ValueError(f"uid {uids[g[0]]!r} groups rows of different examples: "
                             f"{sorted({examples[i].id for i in g})}")
    keys = group_keys([examples[g[0]].id for g in groups], step_key)
    scored: list[Scored | None] = [None] * len(texts)
    queries = refused = 0
    for g, key in zip(groups, keys):
        ex = examples[g[0]]
        n_help = count_help((texts[i] for i in g), ex.kind)
        cloud_text = None
        if n_help:
            queries += 1
            try:
                cloud_text = cloud.assist(ex, messages(ex), idempotency_key=key, group_help=n_help,
                                          group_size=len(g), report_key=usage_key(step_key, ex.task)).completion
            except CloudRefused:  # enforce-mode budget spent: the help requests stay unanswered
                refused += 1
        for i in g:
            scored[i] = score(ex, texts[i], cloud_text, math_grader=math_grader)
    return BatchScores(scored, queries, refused)


def shaped_rewards(rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    """Eq. 12 per row: r - lambda * c (the sequence reward verl puts on the last response token)."""
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    return rewards - lam * costs


@dataclass(frozen=True)
class Usage:
    """The step's measured help ratio and the tau it is held to."""

    ratio: float  # J_c_hat: the gateway's, or the device's own count without a gateway
    device_ratio: float
    tau: float
    mismatch: bool  # the gateway's count of some task disagreed with the device's


def report_batch(cloud: CloudClient, examples: list[Example], scored: list[Scored], step_key: str,
                 config_tau: float | None) -> Usage:
    """One report_usage per task of the batch; J_c_hat over all rows, weighted by responses.

    With a gateway every task's ratio and tau come from its telemetry (tau: the one the gateway
    budgeted these responses at); a batch whose tasks have different taus is refused, because
    one lambda regulates one budget (trainer: one task per step)."""
    per_task: dict[str, list[int]] = {}
    for ex, s in zip(examples, scored):
        per_task.setdefault(ex.task, [0, 0])
        per_task[ex.task][0] += 1
        per_task[ex.task][1] += s.help_request
    reports: dict[str, Telemetry | None] = {
        task: cloud.report_usage(task, n, h, idempotency_key=usage_key(step_key, task))
        for task, (n, h) in per_task.items()}
    responses = sum(n for n, _ in per_task.values())
    device_ratio = sum(h for _, h in per_task.values()) / responses
    if all(t is None for t in reports.values()):
        if config_tau is None:
            raise ValueError("no gateway telemetry and no config tau: nothing to hold lambda to")
        return Usage(device_ratio, device_ratio, config_tau, False)
    if any(t is None for t in reports.values()):
        raise ValueError(f"the cloud returned telemetry for some tasks only: {sorted(reports)}")
    taus = {t.report_tau for t in reports.values()}
    if len(taus) != 1:
        raise ValueError(f"one batch, one lambda, but the gateway's taus differ by task: "
                         f"{ {k: t.report_tau for k, t in reports.items()} }")
    if len(reports) == 1:
        ratio = next(iter(reports.values())).report_ratio
    else:
        ratio = sum(t.report_ratio * per_task[k][0] for k, t in reports.items()) / responses
    mismatch = any(t.report_device_ratio != t.report_ratio for t in reports.values())
    return Usage(ratio, device_ratio, taus.pop(), mismatch)
