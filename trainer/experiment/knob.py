"""Every self-asking method a second time, with the help knob: bias calibrated to tau per phase end.

The paper evaluates greedily: a method asks for help where its greedy answer asks. With the knob
(collab.help_knob, trainer/calibrate.py) the same trained model asks on a share tau of queries: at
each phase end the help bias of every evaluated task is put at the (1 - tau) quantile of the ask
scores of `knob_val_n` validation queries (tau = the budget of the phase that trains the task,
plan.task_taus), then the trainer's own test queries (the same draw as its greedy evaluation) are
decoded greedily with that bias on the GGUF + the run's LoRA, the cloud completing the ones that ask.
The training is the greedy row's (one run, resumed across the phase ends); only the evaluation
differs. Results go to OUT/knob.jsonl per phase end (an interrupted run resumes there) and into
result.json under `<method>+knob`.
"""

from __future__ import annotations

from trainer.experiment.plan import KNOB_SUFFIX, Run, knob_label, task_taus
from trainer.experiment.preset import ExperimentSpec
from trainer.experiment.training import at_phase_ends, trainer_evals
from trainer.methods import SELF_ASKING


def is_knob(method: str) -> bool:
    return method.endswith(KNOB_SUFFIX)


def base_method(method: str) -> str:
    return method[: -len(KNOB_SUFFIX)] if is_knob(method) else method


def report_methods(spec: ExperimentSpec) -> list[str]:
    """The report's rows: each method, and after each self-asking one its knob row when `knob` is on."""
    out = []
    for m in spec.methods:
        out.append(m)
        if spec.knob and m in SELF_ASKING:
            out.append(knob_label(m))
    return out


def train_with_knob(run: Run, spec: ExperimentSpec) -> dict:
    """Train to each phase end, evaluate with the calibrated knob there, resume; both rows' evals."""
    done = at_phase_ends(run.cfg, run.dir, run.dir / "knob.jsonl", "tasks",
                         lambda ctx, k: knob_evals_at(run, spec, k))  # the adapter the trainer saved there
    method = run.methods[0]
    return {method: {"evals": trainer_evals(run.dir)},
            knob_label(method): {"evals": {tag: rec["tasks"] for tag, rec in done.items()}}}


def knob_evals_at(run: Run, spec: ExperimentSpec, k: int) -> dict:
    """{task: metrics} with the knob on the run's adapter as saved at the end of phase k."""
    from llama_runtime.llm import KnobDecoder
    from trainer.calibrate import adapter_gguf, calibrate_task
    from trainer.cloud import make_cloud
    from trainer.engines.llamacpp import base_gguf

    cfg, tc = run.cfg, run.cfg.train
    taus = task_taus(cfg)
    gguf = base_gguf(cfg.model, tc)
    decoder = KnobDecoder(str(gguf), adapter_path=str(adapter_gguf(run.dir, gguf)), threads=tc.engine_threads)
    cloud = make_cloud(cfg.cloud, tc.seed)
    out = {}
    try:
        for task in cfg.eval_task_names(k):
            r = calibrate_task(decoder, task, [taus[task]], n_val=spec.knob_val_n, n_test=tc.eval_n,
                               max_new_tokens=tc.eval_max_new_tokens or tc.max_new_tokens, seed=tc.seed,
                               cloud=cloud, math_grader=tc.math_grader)
            row = r["by_tau"][0]
            out[task] = row["test"] | {"tau": row["tau"], "bias": row["bias"], "val_help_rate": row["val_help_rate"],
                                       "no_knob_help_rate": r["test_help_rate_no_knob"]}
    finally:
        decoder.close()
    return out
