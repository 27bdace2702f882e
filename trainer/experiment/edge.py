"""The edge family on one shared model: train to each phase end, then evaluate it three ways.

  edge_only     no cloud: help requests stay unanswered, so local = joint (paper table 1 shows the
                same row in both blocks);
  naive_router  routing.naive_offload at the task's tau; local over the kept queries;
  router        trainer/methods/router_classifier.py fitted on this model's features and greedy
                outcomes on `router_train_n` train queries of every task seen so far, threshold
                calibrated per task on `router_val_n` val queries to offload rate tau of the task.
The task's tau is the budget of the phase that trains it (its last value for a schedule).
Each phase end's results are appended to OUT/routed.jsonl, so an interrupted run resumes there.
"""

from __future__ import annotations

import logging

import numpy as np

from trainer.evaluate import test_examples
from trainer.experiment.evaluation import cloud_answers, greedy_correct, routed_metrics
from trainer.experiment.plan import Run, task_taus
from trainer.experiment.preset import ExperimentSpec
from trainer.experiment.training import at_phase_ends

log = logging.getLogger("dagrpo.experiment")


def edge_family(run: Run, spec: ExperimentSpec) -> dict:
    """{method: {"evals": {tag: {task: metrics}}}} of every edge-family method of the run."""
    done = at_phase_ends(run.cfg, run.dir, run.dir / "routed.jsonl", "methods",
                         lambda ctx, k: edge_evals_at(ctx, spec, run.methods, k))
    return {m: {"evals": {tag: rec["methods"][m] for tag, rec in done.items()}} for m in run.methods}


def edge_evals_at(ctx, spec: ExperimentSpec, methods: tuple[str, ...], k: int) -> dict:
    """{method: {task: metrics}} of the edge family on the model at the end of phase k."""
    from trainer.methods.routing import naive_offload

    cfg, tag, seed = ctx.cfg, f"phase{k}_end", ctx.cfg.train.seed
    tasks, taus = cfg.eval_task_names(k), task_taus(cfg)  # evaluated, and the router's data
    router = fit_router(ctx, spec, tasks, tag) if "router" in methods and tasks else None
    out: dict[str, dict] = {m: {} for m in methods}
    for t in tasks:
        tests = test_examples(cfg, t)
        local_ok = greedy_correct(ctx, tests)
        cloud_ok = cloud_answers(cfg, tests, tag)
        if "edge_only" in methods:
            out["edge_only"][t] = routed_metrics(local_ok, cloud_ok, [False] * len(tests))
        if "naive_router" in methods:
            out["naive_router"][t] = routed_metrics(local_ok, cloud_ok, naive_offload([ex.id for ex in tests],
                                                                                      taus[t], seed))
        if router is not None:
            out["router"][t] = routed_by(ctx, router, spec, t, taus[t], local_ok, cloud_ok, tests)
    return out


def fit_router(ctx, spec: ExperimentSpec, tasks: list[str], tag: str):
    """The failure classifier on this model's features and greedy outcomes of the tasks' train queries."""
    from trainer.methods.router_classifier import fit_logistic, prompt_features

    train = [ex for t in tasks for ex in test_examples(ctx.cfg, t, "train", spec.router_train_n)]
    fail = [not ok for ok in greedy_correct(ctx, train)]
    router = fit_logistic(prompt_features(ctx.model, [ctx.prompt_ids(ex) for ex in train], ctx.tokenizer.pad_token_id),
                          np.array(fail, dtype=float), l2=spec.router_l2)
    if router.single_class:
        log.warning("router at %s: every train query had the same outcome (%s); it routes at random",
                    tag, "fail" if fail[0] else "success")
    return router


def routed_by(ctx, router, spec: ExperimentSpec, task: str, tau: float, local_ok, cloud_ok, tests) -> dict:
    """The router's metrics on one task: its threshold calibrated on val queries to offload rate tau."""
    from trainer.methods.router_classifier import prompt_features
    from trainer.methods.routing import calibrate_threshold, router_offload

    seed, pad = ctx.cfg.train.seed, ctx.tokenizer.pad_token_id

    def scores(exs):
        return router.scores(prompt_features(ctx.model, [ctx.prompt_ids(ex) for ex in exs], pad),
                             [ex.id for ex in exs], seed)

    val_scores = scores(test_examples(ctx.cfg, task, "val", spec.router_val_n))
    thr = calibrate_threshold(val_scores, tau)
    m = routed_metrics(local_ok, cloud_ok, router_offload(scores(tests), thr))
    return m | {"val_offload_rate": float(np.mean(np.asarray(val_scores) > thr)),
                "threshold": thr, "single_class": router.single_class}
