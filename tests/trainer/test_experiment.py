"""`dagrpo experiment` end to end on the tiny random model: every method, resume, report, routers.

One module-scoped run of a two-phase preset (math -> science, 1 step each) with all eight methods;
the tests read its outputs. The tiny model answers nothing right, which makes the router's
classifier single-class: its calibrated offload rate must still be tau (hash tie-break).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dagrpo.errors import UserError

PRESET = """
[experiment]
name = "tiny"
kind = "table1"
methods = ["cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", "gapg", "da_grpo"]
seeds = [0]
router_train_n = 4
router_val_n = 10

[experiment.warmup]
steps = 2
batch = 2
help_share = 0.5

[[experiment.tasks]]
name = "math-easy"
base = "math"
levels = [1]

[base.model]
name_or_path = "tiny-random"
lora_r = 4
lora_alpha = 8.0

[base.train]
G = 2
batch_prompts = 1
max_new_tokens = 4
eval_n = 6
eval_at_start = false
train_pool = 8
eta_lambda = 0.5

[[scenarios]]
name = "s1"
forgetting_task = "math-easy"

[[scenarios.phases]]
tasks = ["math-easy"]
steps = 1
tau = 0.3

[[scenarios.phases]]
tasks = ["science"]
steps = 1
tau = 0.5
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from trainer.experiment.driver import run_all
    from trainer.experiment.preset import load_preset

    root = tmp_path_factory.mktemp("exp")
    (root / "tiny.toml").write_text(PRESET)
    preset = load_preset(root / "tiny.toml")
    lines: list[str] = []
    summary = run_all(preset, root / "out", echo=lines.append)
    return preset, root / "out", summary, lines


def _evals(out, group, method):
    return json.loads((out / "s1" / group / "seed0" / "result.json").read_text())[method]["evals"]


def test_every_method_finishes_and_is_reported(experiment):
    _, out, summary, _ = experiment
    assert summary["finished_runs"] == summary["total_runs"] == 6  # edge family shares one run
    md = (out / "results.md").read_text()
    for label in ("Edge Tuning Only", "Naive Router", "w/ Router", "w/ GRPO", "w/ GVPO", "w/ GAPG", "DA-GRPO",
                  "Cloud LLM"):
        assert label in md
    assert "INCOMPLETE" not in md
    assert (out / "lambda_ratio.png").stat().st_size > 0
    rows = summary["scenarios"]["s1"]["methods"]
    assert set(rows) == {"cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", "gapg", "da_grpo"}
    for m, row in rows.items():  # a during-task and a post-switch number for math-easy, for each method
        assert row["joint"]["during"][0] is not None and row["joint"]["post"][0] is not None, m


def test_router_calibrated_rate_is_tau_on_validation(experiment):
    ev = _evals(experiment[1], "edge", "router")
    for tag, tau in (("phase0_end", 0.3), ("phase1_end", 0.3)):
        assert ev[tag]["math-easy"]["val_offload_rate"] == pytest.approx(round(tau * 10) / 10)
    assert ev["phase1_end"]["science"]["val_offload_rate"] == pytest.approx(0.5)


def test_naive_router_offloads_its_hashed_share(experiment):
    from collab.tasks import get_task
    from trainer.methods.routing import naive_offload

    ev = _evals(experiment[1], "edge", "naive_router")["phase0_end"]["math-easy"]
    ids = [ex.id for ex in get_task("math-easy").examples("test", n=6, seed=0)]
    assert ev["collab_ratio"] == pytest.approx(np.mean(naive_offload(ids, 0.3, 0)))
    assert abs(ev["collab_ratio"] - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / 6)


def test_edge_only_is_local_only_and_cloud_only_is_the_cloud(experiment):
    edge = _evals(experiment[1], "edge", "edge_only")["phase1_end"]
    for task in ("math-easy", "science"):
        assert edge[task]["local_accuracy"] == edge[task]["joint_accuracy"]
        assert edge[task]["collab_ratio"] == 0
    cloud = _evals(experiment[1], "cloud_only", "cloud_only")["phase0_end"]["math-easy"]
    assert cloud["collab_ratio"] == 1 and cloud["joint_accuracy"] >= 5 / 6  # reference cloud, accuracy 0.97


def test_lambda_moves_only_for_da_grpo(experiment):
    from trainer.checkpoint import read_jsonl

    out = experiment[1]
    for m in ("grpo_fixed", "gvpo", "gapg"):
        assert {r["lambda_next"] for r in read_jsonl(out / "s1" / m / "seed0" / "metrics.jsonl")} == {0.5}
    da = read_jsonl(out / "s1" / "da_grpo" / "seed0" / "metrics.jsonl")
    expected = max(0.0, 0.5 + 0.5 * (da[0]["collab_ratio"] - 0.3))
    assert da[0]["lambda_next"] == pytest.approx(expected)


def test_eval_tasks_limit_every_method_and_the_router_to_those_tasks(tmp_path):
    from trainer.experiment.driver import run_all
    from trainer.experiment.preset import load_preset

    text = PRESET.replace('methods = ["cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", '
                          '"gapg", "da_grpo"]', 'methods = ["cloud_only", "router", "da_grpo"]')
    text = text.replace('forgetting_task = "math-easy"', 'forgetting_task = "math-easy"\n'
                        'set = [\'train.eval_tasks=["math-easy"]\']')
    text = text.replace("[experiment.warmup]\nsteps = 2", "[experiment.warmup]\nsteps = 0")
    (tmp_path / "p.toml").write_text(text)
    summary = run_all(load_preset(tmp_path / "p.toml"), tmp_path / "out", echo=lambda *_: None)
    assert summary["finished_runs"] == 3
    for group, method in (("cloud_only", "cloud_only"), ("edge", "router"), ("da_grpo", "da_grpo")):
        ev = json.loads((tmp_path / "out" / "s1" / group / "seed0" / "result.json").read_text())[method]["evals"]
        assert {tag: set(tasks) for tag, tasks in ev.items()} == {"phase0_end": {"math-easy"},
                                                                  "phase1_end": {"math-easy"}}, method
    row = summary["scenarios"]["s1"]["methods"]["da_grpo"]
    assert row["joint"]["during"][0] is not None and row["joint"]["post"][0] is not None


def test_resume_skips_finished_runs_and_rebuilds_a_missing_evaluation(experiment):
    from trainer.experiment.driver import run_all

    preset, out, _, _ = experiment
    edge = out / "s1" / "edge" / "seed0"
    before = json.loads((edge / "result.json").read_text())
    (edge / "result.json").unlink()
    lines = (edge / "routed.jsonl").read_text().splitlines()
    (edge / "routed.jsonl").write_text(lines[0] + "\n")  # as if interrupted before the last evaluation
    log: list[str] = []
    run_all(preset, out, echo=log.append)
    assert sum("skipped" in line for line in log) == 5
    assert any("s1/edge/seed0: running" in line for line in log)
    assert json.loads((edge / "result.json").read_text()) == before


def test_bad_presets_fail_naming_the_field(tmp_path):
    from trainer.experiment.plan import plan
    from trainer.experiment.preset import load_preset

    bad = tmp_path / "bad.toml"
    bad.write_text(PRESET.replace('"gapg", "da_grpo"]', '"gapg", "dagrpo"]'))
    with pytest.raises(UserError, match="experiment.methods"):
        load_preset(bad)
    bad.write_text(PRESET.replace("G = 2", "G = 1"))
    with pytest.raises(UserError, match="train.G"):
        plan(load_preset(bad), tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_preset(tmp_path / "missing.toml")


def test_shipped_presets_resolve():
    from pathlib import Path

    from trainer.experiment.plan import plan
    from trainer.experiment.preset import load_preset

    root = Path(__file__).resolve().parents[2] / "configs" / "experiments"
    counts = {}
    for path in sorted(root.glob("*.toml")):
        preset = load_preset(path)
        if path.name.startswith("paper_"):  # needs a local model directory
            with pytest.raises(UserError, match="model.name_or_path"):
                plan(preset, Path("/nonexistent"))
            continue
        counts[path.stem] = len(plan(preset, Path("/nonexistent")))
    # micro Table 1: 2 scenarios x 3 seeds x (1 shared edge run + cloud_only + 6 collaborative)
    assert counts["micro_table1"] == 48
    # the tracking figures: da_grpo, da_grpo_tracked and da_grpo_knob per scenario
    assert counts["micro_tau_schedules"] == 12 and counts["micro_tau_sweep"] == 9
    assert counts["micro_lambda_init"] == 15


def test_tracking_gap_is_the_last_quarter_of_each_tau_segment():
    from trainer.experiment.aggregate import tracking_gaps

    ratios = [0.9, 0.5, 0.2, 0.15, 0.1, 0.1, 0.3, 0.6, 0.5, 0.4, 0.7, 0.8]
    taus = [0.1] * 8 + [0.5] * 4
    metrics = [{"step": i + 1, "tau": t, "collab_ratio": r, "lambda_next": 0.1 * i}
               for i, (t, r) in enumerate(zip(taus, ratios))]
    gaps = tracking_gaps(metrics)
    assert [(g["first_step"], g["last_step"], g["tau"], g["tail_steps"]) for g in gaps] == [(1, 8, 0.1, 2), (9, 12, 0.5, 1)]
    assert gaps[0]["gap"] == pytest.approx((0.2 + 0.5) / 2)  # steps 7, 8: |0.3-0.1|, |0.6-0.1|
    assert gaps[1]["gap"] == pytest.approx(0.3)  # step 12: |0.8-0.5|
    assert gaps[1]["lambda_end"] == pytest.approx(1.1)


def test_cli_rejects_a_method_outside_the_preset(tmp_path, capsys):
    from dagrpo.cli import main

    (tmp_path / "tiny.toml").write_text(PRESET.replace('"gapg", "da_grpo"]', '"da_grpo"]'))
    assert main(["experiment", "--config", str(tmp_path / "tiny.toml"), "--methods", "gapg"]) == 2
    assert "--methods: ['gapg'] not in the preset" in capsys.readouterr().err
    assert main(["experiment", "--config", str(tmp_path / "tiny.toml"), "--seeds", "x"]) == 2


def test_a_changed_preset_does_not_resume_silently(experiment, tmp_path):
    from trainer.experiment.driver import run_all
    from trainer.experiment.preset import load_preset

    _, out, _, _ = experiment
    (out / "s1" / "da_grpo" / "seed0" / "result.json").unlink()
    changed = tmp_path / "changed.toml"
    changed.write_text(PRESET.replace("eta_lambda = 0.5", "eta_lambda = 0.25"))
    with pytest.raises(UserError, match="different config"):
        run_all(load_preset(changed), out, methods=["da_grpo"], echo=lambda _: None)


def test_runs_start_from_the_format_warmup(experiment):
    from trainer.config import load_config

    out = experiment[1]
    losses = json.loads((out / "warmup" / "warmup.json").read_text())["losses"]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    for group in ("edge", "gvpo", "da_grpo"):
        cfg = load_config(out / "s1" / group / "seed0" / "config.toml")
        assert cfg.model.init_adapter == str(out / "warmup" / "adapter")


@pytest.mark.parametrize("kind", ["lambda_init", "tau_sweep", "tau_schedules"])
def test_report_figures_from_recorded_runs(tmp_path, kind):
    """The report alone (no training): fake finished runs -> results.md, results.json, figures."""
    from trainer.experiment.driver import run_all
    from trainer.experiment.plan import plan
    from trainer.experiment.preset import load_preset

    scen = "\n".join(f'[[scenarios]]\nname = "s{i}"\nset = ["train.lambda_init={lam}", "phases.0.tau={tau}"]\n'
                     for i, (lam, tau) in enumerate([(0.1, 0.3), (1.0, 0.5)]))
    text = PRESET[: PRESET.index("[[scenarios]]")].replace('kind = "table1"', f'kind = "{kind}"')
    text = text.replace("[experiment.warmup]\nsteps = 2", "[experiment.warmup]\nsteps = 0")
    text += '[[base.phases]]\ntasks = ["math-easy"]\nsteps = 8\ntau = 0.3\n\n' + scen
    (tmp_path / "p.toml").write_text(text.replace('methods = ["cloud_only", "edge_only", "naive_router", "router", '
                                                  '"grpo_fixed", "gvpo", "gapg", "da_grpo"]', 'methods = ["da_grpo"]'))
    preset = load_preset(tmp_path / "p.toml")
    for run in plan(preset, tmp_path / "out"):
        run.dir.mkdir(parents=True)
        tau = run.cfg.phases[0].tau
        rows = [{"step": s, "tau": tau, "collab_ratio": tau + 0.05, "lambda_next": 0.1 * s, "responses": 8}
                for s in range(1, 9)]
        (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        ev = {"math-easy": {"n": 4, "local_n": 2, "local_accuracy": 0.5, "joint_accuracy": 0.75, "collab_ratio": tau}}
        (run.dir / "result.json").write_text(json.dumps({"da_grpo": {"evals": {"phase0_end": ev}}}))
    summary = run_all(preset, tmp_path / "out", report_only=True, echo=lambda _: None)
    assert summary["finished_runs"] == 2
    gaps = summary["scenarios"]["s1"]["methods"]["da_grpo"]["tracking"]
    assert [g["gap"] for g in gaps[0]] == [pytest.approx(0.05)]
    md = (tmp_path / "out" / "results.md").read_text()
    # one seed: no interval, n=1; floor E|Bin(8, 0.5)/8 - 0.5| = 280 / 256 / 8 = 0.137
    assert "| da_grpo | 1-8 | 0.5 | 0.050 (n=1) | 0.137 | 0.800 (n=1) |" in md
    from trainer.intervals import binomial_gap_floor

    track = summary["tracking"]["da_grpo"]  # both scenarios' one segment each
    assert (track["segments"], track["within"]) == (2, 2) and track["mean_gap"] == pytest.approx(0.05)
    assert track["mean_floor"] == pytest.approx((binomial_gap_floor(8, 0.3) + 0.13671875) / 2)
    assert "| da_grpo | 2 | 0.050 |" in md
    expected = {"lambda_init": "lambda_init.png", "tau_sweep": "accuracy_vs_tau.png", "tau_schedules": "lambda_ratio.png"}
    assert (tmp_path / "out" / expected[kind]).stat().st_size > 10_000


def test_knob_rows_are_reported_beside_the_greedy_ones(tmp_path):
    """`knob = true`: each self-asking method gets a second row from its `+knob` evals, the rows say
    which is greedy and which knobbed, and the help-rate table counts the seeds within 0.1 of tau."""
    from trainer.experiment.driver import run_all
    from trainer.experiment.plan import plan
    from trainer.experiment.preset import load_preset

    text = PRESET.replace('methods = ["cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", '
                          '"gapg", "da_grpo"]\nseeds = [0]', 'methods = ["edge_only", "da_grpo"]\nseeds = [0, 1]\nknob = true')
    text = text.replace("[experiment.warmup]\nsteps = 2", "[experiment.warmup]\nsteps = 0")
    (tmp_path / "p.toml").write_text(text)
    preset = load_preset(tmp_path / "p.toml")
    runs = plan(preset, tmp_path / "out")
    assert {r.group: r.methods for r in runs} == {"edge": ("edge_only",), "da_grpo": ("da_grpo", "da_grpo+knob")}
    for run in runs:
        run.dir.mkdir(parents=True)
        rows = [{"step": s, "tau": 0.3, "collab_ratio": 0.5, "lambda_next": 0.1} for s in (1, 2)]
        (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

        def ev(ratio, acc):
            return {"math-easy": {"n": 10, "local_n": 5, "local_accuracy": 0.2, "joint_accuracy": acc,
                                  "collab_ratio": ratio}}
        # greedy asks on everything; the knob on 0.3 (seed 0) and 0.5 (seed 1) of the test queries
        result = {m: {"evals": {"phase0_end": ev(1.0, 0.9), "phase1_end": ev(1.0, 0.9)}} for m in run.methods}
        if "da_grpo+knob" in run.methods:
            knob_ratio = 0.3 if run.seed == 0 else 0.5
            result["da_grpo+knob"] = {"evals": {"phase0_end": ev(knob_ratio, 0.6), "phase1_end": ev(knob_ratio, 0.5)}}
        (run.dir / "result.json").write_text(json.dumps(result))
    summary = run_all(preset, tmp_path / "out", report_only=True, echo=lambda _: None)
    methods = summary["scenarios"]["s1"]["methods"]
    assert methods["da_grpo+knob"]["joint"]["post"] == [0.5, 0.5]
    assert methods["da_grpo+knob"]["help"] == {"tau": 0.3, "rates": [0.3, 0.5], "within": 1, "tol": 0.1}
    assert methods["da_grpo"]["help"]["within"] == 0 and "help" not in methods["edge_only"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| da_grpo+knob | 0.3 | 0.400 ± " in md and "| 1/2 |" in md
    assert "Collaborative Training w/ DA-GRPO [greedy] (n=2)" in md
    assert "Collaborative Training w/ DA-GRPO [knob: bias calibrated to tau] (n=2)" in md
    assert "Edge Tuning Only (n=2)" in md  # not a self-asking method: one row, no tag
