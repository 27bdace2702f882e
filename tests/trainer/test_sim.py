"""The simulator of the collaboration game against hand-computed numbers and against theory.

Theory checks (issue 19): the best response's simulated J_c equals the closed form; at an interior
fixed point of the dual loop, lambda is lambda* and the mean ratio is tau (Proposition B.1).
"""

import json

import numpy as np
import pytest

from dagrpo.cli import main
from trainer.sim import game
from trainer.sim.config import load_sim_config, preset_path, sim_config_from_dict
from trainer.sim.optim import Adam
from trainer.sim.run import segment_gaps, simulate

SPREAD = [(k + 0.5) / 8 for k in range(8)]


def _cfg(sim: dict, **train) -> object:
    base = {"G": 8, "batch_prompts": 64, "lr": 0.02, "eta_lambda": 0.01, "lambda_init": 0.5, "seed": 0}
    return sim_config_from_dict({"train": {**base, **train}, "sim": {"p_local": SPREAD, **sim}})


def test_grpo_gradient_hand_computed():
    probs = np.array([[0.5, 0.5]])
    # one prompt, G 2: ask with A .5, local with A -.5; score(ask) = [-.5, .5], score(local) = [.5, -.5]
    # sum A * score = [-.5, .5]; times G/(G-1) = 2, / B = 1
    g = game.grpo_gradient(probs, np.array([0]), np.array([[True, False]]), np.array([[0.5, -0.5]]))
    np.testing.assert_allclose(g, [[-1.0, 1.0]])
    two = game.grpo_gradient(np.array([[0.5, 0.5], [0.8, 0.2]]), np.array([1, 1]),
                             np.array([[True, True], [False, False]]), np.array([[1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(two, [[0, 0], [-0.8, 0.8]])  # 1 * [-.8, .8] * 2 / 2 prompts, class 0 untouched


@pytest.mark.parametrize("baseline", ["group", "tau", "running"])
def test_estimator_is_unbiased_for_every_cost_baseline(baseline):
    from trainer.methods.da_grpo import DaGrpo

    rng = np.random.default_rng(1)
    p, w, lam, f = np.array([0.2, 0.5, 0.9]), np.full(3, 1 / 3), 0.4, 0.1
    q = np.array([0.3, 0.6, 0.5])
    probs = np.stack([1 - q, q], axis=-1)
    method = DaGrpo(cost_baseline=baseline)
    method.begin_step(tau=0.35)
    method.end_step(0.6)  # the running baseline: 0.6
    grads = []
    for _ in range(100):
        s = game.sample_step(rng, q, p, w, 2000, 4, 0.97, f)
        grads.append(game.grpo_gradient(probs, s["classes"], s["asks"], method.advantages(s["rewards"], s["costs"], lam)))
    exact = game.expected_gradient(probs, p, w, lam, 0.97, f)
    # class 0 by hand: (1/3) * 0.9 * (0.97 - 0.4 - 0.2) * 0.3 * 0.7 = 0.02331
    assert exact[0, 1] == pytest.approx(0.02331, abs=1e-5)
    # eq. 8 sums G unbiased terms: its mean is G * exact (without the G/(G-1) factor: 0.75 * G * exact)
    np.testing.assert_allclose(np.mean(grads, axis=0) / 4, exact, atol=0.001)


def test_best_response_and_lambda_star_closed_forms():
    np.testing.assert_array_equal(game.best_response([0.2, 0.6], 0.5, 0.97), [1.0, 0.0])  # gains .27, -.13
    assert game.best_response([0.47], 0.5, 0.97, temperature=0.1)[0] == pytest.approx(0.5)
    # one class: J_c = (1-f) sigmoid((acc - lam - p)/T) = tau  =>  lam* = acc - p - T * logit(tau / (1-f))
    lam = game.lambda_star(0.3, np.array([0.4]), np.array([1.0]), 0.97, 0.1, 0.05)
    assert lam == pytest.approx(0.97 - 0.4 - 0.05 * np.log((1 / 3) / (2 / 3)), abs=1e-9)
    with pytest.raises(ValueError, match="interior"):
        game.lambda_star(0.95, np.array([0.4]), np.array([1.0]), 0.97, 0.1, 0.05)  # J_c <= 0.9 < tau


@pytest.mark.parametrize("lam, share", [(0.1, 7 / 8), (0.45, 4 / 8), (0.8, 1 / 8)])
def test_best_response_ratio_matches_closed_form(lam, share):
    # held at the hard best response to a fixed lambda (eta 0): ask in class k iff 0.97 - lam > p_k
    # spread p = 1/16, 3/16, ...: 0.87 > 7 of them, 0.52 > 4, 0.17 > 1; format kept 90%
    cfg = _cfg({"policy": "best_response", "format_fail": 0.1, "taus": [0.3], "segment_steps": 200},
               eta_lambda=0.0, lambda_init=lam)
    ratios = [r["collab_ratio"] for r in simulate(cfg)]
    assert np.mean(ratios) == pytest.approx(0.9 * share, abs=0.02)  # SE ~0.004


def test_interior_fixed_point_enforces_tau():
    # smoothed best response (T 0.05) makes J_c(lambda) continuous; the dual loop must settle at lambda*
    # (which a cost that counted format-broken requests, or a wrong sign, would miss) and the mean ratio at tau
    cfg = _cfg({"policy": "best_response", "br_temperature": 0.05, "format_fail": 0.1, "taus": [0.3],
                "segment_steps": 3000}, eta_lambda=0.05, batch_prompts=32)
    rec = simulate(cfg)[1500:]
    star = game.lambda_star(0.3, np.array(SPREAD), np.full(8, 1 / 8), 0.97, 0.1, 0.05)
    assert np.mean([r["lambda"] for r in rec]) == pytest.approx(star, abs=0.01)
    assert np.mean([r["collab_ratio"] for r in rec]) == pytest.approx(0.3, abs=0.01)


def test_learning_policy_tracks_tau_at_the_paper_scale():
    # the full loop (eq. 8 estimator + Adam + ascent) at 128 x 8: the last-quarter mean ratio is near tau
    cfg = _cfg({"taus": [0.3], "segment_steps": 1600}, batch_prompts=128, lambda_controller="pid", pid_kp=1.0)
    seg = segment_gaps(simulate(cfg), 1600)[0]
    assert seg["bias"] < 0.015


def test_segment_gaps_hand_computed():
    recs = [{"collab_ratio": r, "tau": t, "lambda_next": 0.1 * i}
            for i, (r, t) in enumerate([(0.9, 0.3)] * 6 + [(0.2, 0.3), (0.6, 0.3), (0.5, 0.5), (0.5, 0.5)])]
    segs = segment_gaps(recs, 8)  # last quarter = last 2 steps: ratios .2, .6 vs .3; then a short segment
    assert segs[0]["gap"] == pytest.approx(0.2) and segs[0]["bias"] == pytest.approx(0.1)
    assert segs[0]["lambda_end"] == pytest.approx(0.7)
    assert segs[1]["gap"] == pytest.approx(0.0) and segs[1]["tau"] == 0.5


def test_adam_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[0.0, 0.5], [1.0, -1.0]], requires_grad=True)
    opt = torch.optim.AdamW([x], lr=0.1, weight_decay=0.01)
    ours, y = Adam(0.1, 0.01), x.detach().numpy().copy()
    for k in range(5):
        g = np.array([[0.3, -0.1], [0.0, 2.0]]) * (k - 1.5)
        x.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        y = ours.step(y, g)
    np.testing.assert_allclose(y, x.detach().numpy(), atol=1e-6)


def test_presets_load_and_validate():
    paper = load_sim_config(preset_path("paper_scale"))
    assert (paper.train.batch_prompts, paper.train.G, paper.train.eta_lambda, paper.total_steps()) == (128, 8, 0.01, 1240)
    micro = load_sim_config(preset_path("micro_scale"), ["train.lambda_controller=pid"])
    assert (micro.train.batch_prompts, micro.train.G, micro.train.lambda_controller) == (2, 4, "pid")
    from dagrpo.errors import UserError

    with pytest.raises(UserError, match="sim.weights"):
        load_sim_config(preset_path("paper_scale"), ["sim.weights=[1, 2]"])
    with pytest.raises(UserError, match="train.method"):
        load_sim_config(preset_path("paper_scale"), ['train.method="grpo_fixed"'])


def test_cli_writes_a_run_like_the_trainer(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--preset", "micro_scale", "--out", str(out), "--no-progress",
                 "--set", "sim.segment_steps=6", "--set", "train.cost_baseline=running"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and rows[-1]["step"] == 24
    for key in ("step", "phase", "task", "tau", "lambda", "collab_ratio", "reward_mean", "cost_mean",
                "accuracy", "tokens_per_s"):
        assert key in rows[0]
    assert [r["tau"] for r in rows[::6]] == [0.1, 0.3, 0.5, 0.7]
    assert all(r["responses"] == 8 for r in rows)
    assert (out / "ratio.png").is_file() and (out / "lambda.png").is_file()
    assert len(json.loads((out / "summary.json").read_text())["segments"]) == 4


def test_study_figures_are_drawn_from_simulated_records(tmp_path):
    """The figure writers of `dagrpo simulate --study` on a short simulated run (each a real PNG)."""
    from trainer.sim.figures import draw

    cfg = load_sim_config(preset_path("micro_scale"), ["sim.segment_steps=6", "sim.taus=[0.3, 0.5]"])
    rec = simulate(cfg)
    grid = draw("schedules", [], {"micro": {"up": rec, "down": rec}}, tmp_path)
    inits = draw("lambda_init", [], {"micro": {0.5: rec, 1.0: rec}}, tmp_path)
    rows = [{"B": b, "G": 8, "responses": 8 * b, "controller": c, "gap": 0.3 / b, "bias": 0.1 / b}
            for b in (1, 2) for c in ("ascent", "pid")]
    resp = draw("responses", rows, {}, tmp_path)
    for path in grid + inits + resp:
        assert path.is_file() and path.stat().st_size > 5_000
    assert draw("ask_init", [], {}, tmp_path) == []  # a table-only study
