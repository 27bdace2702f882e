"""The format warm-up (trainer/warmup.py): batches, targets, and a run that starts from it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dagrpo.errors import UserError
from trainer.config import load_config
from trainer.warmup import WarmupConfig, warmup_batches, warmup_report, warmup_targets


def test_batches_are_one_task_each_round_robin():
    spec = WarmupConfig(steps=5, batch=3, data_seed=7, tasks=["drill-math", "drill-qa"])
    batches = warmup_batches(spec.tasks, spec)
    assert [len(b) for b in batches] == [3] * 5
    tasks = [{ex.task for ex in b} for b in batches]
    assert tasks == [{"drill-math"}, {"drill-qa"}, {"drill-math"}, {"drill-qa"}, {"drill-math"}]
    ids = [ex.id for b in batches for ex in b]
    assert len(set(ids)) == len(ids)  # no example twice


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(UserError, match="warmup.tasks"):
        load_config("configs/smoke.toml", ['warmup.tasks=["nope"]'])
    with pytest.raises(UserError, match="warmup.steps"):
        load_config("configs/smoke.toml", ["warmup.steps=-1"])
    with pytest.raises(UserError, match="model.init_adapter"):
        load_config("configs/smoke.toml", [f'model.init_adapter="{tmp_path}"'])
    cfg = load_config("configs/smoke.toml", ["warmup.steps=2"])
    assert cfg.warmup.tasks == ["drill-math", "drill-qa", "drill-code"]  # the format drills by default


def test_the_warmup_never_sees_a_task_of_the_run():
    # an evaluated task in the warm-up, or a drill in a phase, fails at load naming the field
    with pytest.raises(UserError, match=r"warmup.tasks.*not format drills"):
        load_config("configs/smoke.toml", ["warmup.steps=2", 'warmup.tasks=["math"]'])
    with pytest.raises(UserError, match=r"phases.1.tasks: 'drill-qa' is a format drill"):
        load_config("configs/smoke.toml", ['phases.1.tasks=["drill-qa"]'])
    with pytest.raises(UserError, match="warmup.tasks"):
        load_config("configs/smoke.toml", ["warmup.tasks=[]"])


def test_help_targets_are_rare_diverse_first_steps():
    from collab.protocol import HELP_TRIGGER, requests_help
    from collab.scoring import score
    from collab.tasks import get_task

    exs = [ex for t in ("drill-math", "drill-qa", "drill-code") for ex in get_task(t).examples("train", n=100)]
    texts = warmup_targets(exs, 0.1, 1000)
    helps = [(ex, t) for ex, t in zip(exs, texts) if requests_help(t)]
    assert 15 <= len(helps) <= 45  # about 10% of 300
    assert len({t for _, t in helps}) == len(helps)  # no constant help string
    for ex, text in helps:
        assert text == f"<think>\nStep 1: {ex.meta['first_step']}\n{HELP_TRIGGER}"
        assert score(ex, text).cost == 1.0  # a budgeted request: the local part is in format
    for ex, text in zip(exs, texts):
        if not requests_help(text) and ex.kind != "code":
            assert score(ex, text).reward == 1.0


def test_report_says_what_the_warmup_saw():
    spec = WarmupConfig(steps=4, batch=3, help_share=0.1)
    report = warmup_report(spec.tasks, spec)
    batches = warmup_batches(spec.tasks, spec)
    n_help = sum("I need external assistance." in t
                 for t in warmup_targets([ex for b in batches for ex in b], 0.1, spec.data_seed))
    assert report["tasks"] == {"drill-math": 6, "drill-qa": 3, "drill-code": 3}  # steps 0, 3 | 1 | 2
    assert report["examples"] == 12 and report["help_targets"] == n_help
    assert report["help_share"] == n_help / 12 and report["help_share_config"] == 0.1


def _lora(model) -> dict:
    """The trained LoRA (peft adapter "default"; a run from a warm-up also holds the frozen reference)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n and ".default." in n}


def test_run_starts_from_the_warmup_and_resumes_exactly(tmp_path):
    from trainer.models import load_policy
    from trainer.train import train

    sets = ["warmup.steps=3", "warmup.batch=2", "warmup.lr=0.01", "train.save_every=1"]
    cfg = load_config("configs/smoke.toml", sets)
    fresh = _lora(load_policy(cfg.model, seed=cfg.train.seed)[0])

    # step 0 is the warmed-up LoRA, checkpointed before any RL step
    ctx0 = train(cfg, tmp_path / "a", max_steps=0, progress=False)
    info = json.loads((tmp_path / "a" / "warmup.json").read_text())
    assert info["tasks"] == {"drill-math": 2, "drill-qa": 2, "drill-code": 2}  # never a task of the phases
    assert info["examples"] == 6 and info["help_share_config"] == 0.1
    assert len(info["losses"]) == 3 and all(math.isfinite(x) for x in info["losses"])
    warmed = _lora(ctx0.model)
    assert any(not torch.equal(fresh[n], warmed[n]) for n in fresh)
    # pi_ref of the run is the warmed-up LoRA (saved as OUT/reference), not the raw base
    ref = {n.replace(".reference.", ".default."): p for n, p in ctx0.model.named_parameters() if ".reference." in n}
    assert set(ref) == set(warmed) and all(torch.equal(ref[n], warmed[n]) for n in warmed)
    assert json.loads((tmp_path / "a" / "state.json").read_text())["step"] == 0

    # resume from step 0 == the uninterrupted run
    straight = train(cfg, tmp_path / "b", progress=False)
    resumed = train(None, tmp_path / "a", resume=True, progress=False)
    assert resumed.lam == pytest.approx(straight.lam)
    a, b = _lora(resumed.model), _lora(straight.model)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)

    # model.init_adapter loads a saved adapter (here the resumed run's final one) as the start
    start = load_config("configs/smoke.toml", [f'model.init_adapter="{tmp_path / "a" / "adapter"}"'])
    model = load_policy(start.model, adapter=start.model.init_adapter, seed=0)[0]
    final = _lora(model)
    assert all(np.allclose(final[n].numpy(), a[n].numpy(), atol=1e-6) for n in a)


def test_resume_without_the_reference_adapter_fails_clearly(tmp_path):
    import shutil

    from trainer.train import train

    cfg = load_config("configs/smoke.toml", ["warmup.steps=1", "warmup.batch=2"])
    train(cfg, tmp_path / "a", max_steps=0, progress=False)
    shutil.rmtree(tmp_path / "a" / "reference")  # as a run started before pi_ref was kept
    with pytest.raises(UserError, match="no reference/ adapter"):
        train(None, tmp_path / "a", resume=True, progress=False)
