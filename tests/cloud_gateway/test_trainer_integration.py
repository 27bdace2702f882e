"""The trainer through a real gateway: cloud queries go through Assist, the dual update uses the
gateway's metered ratio, and the gateway's counts equal the trainer's.

Two real DA-GRPO steps on the tiny random model (scripted rollouts: half of each group asks for
help with a valid format, half answers wrongly), `cloud.backend = "gateway"`.
"""

from __future__ import annotations

import json

import pytest

from collab.gateway_client import AdminClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELP = "<think>\nStep 1: This looks hard.\nI need external assistance."
WRONG = "<think>\nStep 1: Guess.\n</think>\n<answer>Final answer: \\boxed{-12345}</answer>"


class HalfHelp:
    """Rollout engine double: response i of every group is HELP (even i) or WRONG (odd i)."""

    def __call__(self, model, tokenizer):
        from trainer.engines.base import truncate_response

        self.tok, self.truncate = tokenizer, truncate_response
        return self

    def generate(self, prompts, n, max_new_tokens, temperature):
        eos = self.tok.eos_token_id
        texts = [HELP if i % 2 == 0 else WRONG for i in range(n)]
        return [[self.truncate(self.tok(t, add_special_tokens=False).input_ids[:max_new_tokens] + [eos],
                               self.tok, {eos}) for t in texts] for _ in prompts]


def test_training_steps_are_metered_by_the_gateway(gateway, keys, tmp_path):
    from trainer.config import load_config
    from trainer.train import train

    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    cfg = load_config(None, [
        'model.name_or_path="tiny-random"', "model.lora_r=4", "model.lora_alpha=8",
        "train.G=4", "train.batch_prompts=2", "train.max_new_tokens=48", "train.eval_n=2",
        "train.lr=0.01", "train.eta_lambda=0.5", "train.train_pool=16", "train.eval_at_start=false",
        'phases=[{tasks=["math"], steps=2, tau=0.1}]',
        'cloud.backend="gateway"', f'cloud.address="{gateway.address}"', f'cloud.api_key="{keys.d1}"',
    ])
    train(cfg, tmp_path / "run", engine_factory=HalfHelp(), progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["collab_ratio"] for r in records] == [0.5, 0.5]
    assert [r["collab_ratio_device"] for r in records] == [0.5, 0.5]
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.9])  # 0.5 + 0.5 * (0.5 - 0.1), ...
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.responses, budget.help_requests) == (16, 8)  # 2 steps x 2 prompts x G=4
    # One Assist per training group that asked (2 steps x 2 prompts), plus the phase-end evaluation
    # (eval_n = 2 greedy answers, both HELP with the scripted engine).
    assert sum(r["cloud_queries"] for r in records) == 4
    assert budget.cloud_calls == 4 + 2
    assert budget.tokens > 0 and budget.lifetime_ratio == 0.5

    # A second run on the same device key: its Assist keys carry its own run id, so none of them
    # replays the first run's (train/<step>/<b> and eval/<tag>/<id> repeat across runs).
    second = train(cfg, tmp_path / "run2", engine_factory=HalfHelp(), progress=False)
    first_id = json.loads((tmp_path / "run" / "state.json").read_text())["run_id"]
    assert second.run_id and second.run_id != first_id
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.responses, budget.help_requests) == (32, 16)
    assert budget.cloud_calls == 2 * (4 + 2)
