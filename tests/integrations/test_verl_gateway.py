"""The verl reward manager's step through a real gateway (loopback gRPC, SQLite, reference backend
at accuracy 1): the same rewards, costs and lambda as the trainer's functions, the gateway's
measured ratio and tau driving lambda, and a replayed step counted once."""

from __future__ import annotations

import types

import numpy as np
import pytest

from collab.gateway_client import AdminClient, GatewayCloud
from integrations.verl.config import load
from integrations.verl.driver import DualRewardLoop
from trainer.dual import make_controller
from trainer.prompting import messages

from .verl_batch import batch

pytestmark = pytest.mark.integration


def test_step_through_the_gateway_matches_the_trainer(gateway, keys, tmp_path):
    from trainer.step import collect

    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    examples, texts, ex_rows, flat_texts, uids, order = batch()
    c = load({"state_dir": str(tmp_path / "state"), "eta_lambda": 0.5,
              "cloud": {"backend": "gateway", "address": gateway.address, "api_key": keys.d1}})
    loop = DualRewardLoop(c)
    result = loop.train_step(ex_rows, flat_texts, uids)

    # The trainer's own path on another device key: collect + report_usage + the controller.
    cloud = GatewayCloud(gateway.address, keys.d2, key_prefix="trainer/")
    ctx = types.SimpleNamespace(cloud=cloud, messages=messages,
                                cfg=types.SimpleNamespace(train=types.SimpleNamespace(math_grader="exact")))
    scored, queries, _ = collect(ctx, examples, [[types.SimpleNamespace(text=t) for t in g] for g in texts],
                                 key="train/1")
    flat = [s for g in scored for s in g]
    telemetry = cloud.report_usage("math", 8, sum(s.help_request for s in flat), idempotency_key="train/1/usage")
    assert result.scores.rewards.tolist() == np.array([s.reward for s in flat])[order].tolist()
    assert result.scores.costs.tolist() == np.array([s.cost for s in flat])[order].tolist()
    assert result.usage.ratio == telemetry.report_ratio == 2 / 8 and result.usage.tau == telemetry.report_tau == 0.1
    assert result.lam_next == make_controller(c).update(telemetry.report_ratio, telemetry.report_tau)
    assert not result.usage.mismatch

    admin = AdminClient(gateway.address, keys.admin)
    d1 = admin.budgets(device="d1", task="math").budgets[0]
    assert (d1.responses, d1.help_requests, d1.cloud_calls, d1.mismatches) == (8, 2, queries, 0)

    # Step 2, then a crash; verl resumes from its checkpoint of step 1 and runs step 2 again.
    second = loop.train_step(ex_rows, flat_texts, uids)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("1")
    replay = DualRewardLoop(c.model_copy(update={"checkpoint_dir": str(tmp_path / "ckpt")}))
    assert (replay.step, replay.lam, replay.run_id) == (1, result.lam_next, loop.run_id)
    again = replay.train_step(ex_rows, flat_texts, uids)
    assert again.lam_next == second.lam_next
    d1 = admin.budgets(device="d1", task="math").budgets[0]
    assert (d1.responses, d1.help_requests, d1.cloud_calls) == (16, 4, 2 * queries)  # step 2 counted once
