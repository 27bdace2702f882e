"""The trainer through a real gateway: cloud queries go through Assist, the dual update uses the
gateway's measured ratio and the gateway's tau, and every count is exactly once.

Real DA-GRPO steps on the tiny random model (scripted rollouts: half of each group asks for help
with a valid format, half answers wrongly), `cloud.backend = "gateway"`.
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


def run_config(gateway, key, steps=2, tau=0.1, extra=()):
    from trainer.config import load_config

    return load_config(None, [
        'model.name_or_path="tiny-random"', "model.lora_r=4", "model.lora_alpha=8",
        "train.G=4", "train.batch_prompts=2", "train.max_new_tokens=48", "train.eval_n=2",
        "train.lr=0.01", "train.eta_lambda=0.5", "train.train_pool=16", "train.eval_at_start=false",
        f'phases=[{{tasks=["math"], steps={steps}, tau={tau}}}]',
        'cloud.backend="gateway"', f'cloud.address="{gateway.address}"', f'cloud.api_key="{key}"', *extra,
    ])


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_steps_are_metered_by_the_gateway(gateway, keys, tmp_path):
    from trainer.train import train

    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    cfg = run_config(gateway, keys.d1)
    train(cfg, tmp_path / "run", engine_factory=HalfHelp(), progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["collab_ratio"] for r in records] == [0.5, 0.5]
    assert [r["collab_ratio_device"] for r in records] == [0.5, 0.5]
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.9])  # 0.5 + 0.5 * (0.5 - 0.1), ...
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    # 2 steps x 2 prompts x G=4, plus the phase-end evaluation (eval_n = 2 greedy answers, both
    # HELP with the scripted engine), reported as usage like served answers.
    assert (budget.responses, budget.help_requests) == (16 + 2, 8 + 2)
    assert (budget.reported_help_requests, budget.mismatches) == (8 + 2, 0)
    # One Assist per training group that asked (2 steps x 2 prompts), plus the evaluation's two.
    assert sum(r["cloud_queries"] for r in records) == 4
    assert budget.cloud_calls == 4 + 2
    assert budget.tokens > 0 and budget.lifetime_ratio == 10 / 18

    # A second run on the same device key: its Assist keys carry its own run id, so none of them
    # replays the first run's (train/<step>/<b> and eval/<tag>/<id> repeat across runs).
    second = train(cfg, tmp_path / "run2", engine_factory=HalfHelp(), progress=False)
    first_id = json.loads((tmp_path / "run" / "state.json").read_text())["run_id"]
    assert second.run_id and second.run_id != first_id
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.responses, budget.help_requests) == (2 * 18, 2 * 10)
    assert budget.cloud_calls == 2 * (4 + 2)


class UnderReporting:
    """A dishonest device: its reports claim no help request at all (its Assist calls are real)."""

    def __init__(self, cloud):
        self.cloud = cloud

    def __getattr__(self, name):
        return getattr(self.cloud, name)

    def report_usage(self, task, responses, help_requests, **kw):
        return self.cloud.report_usage(task, responses, 0, **kw)


def test_a_device_that_under_reports_is_caught_and_its_lambda_still_rises(gateway, keys, tmp_path, monkeypatch):
    import urllib.request

    import trainer.context as context_mod
    from trainer.train import train

    make = context_mod.make_cloud
    monkeypatch.setattr(context_mod, "make_cloud", lambda *a, **kw: UnderReporting(make(*a, **kw)))
    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    train(run_config(gateway, keys.d1), tmp_path / "run", engine_factory=HalfHelp(), progress=False)
    records = read_metrics(tmp_path / "run")
    assert [r["collab_ratio"] for r in records] == [0.5, 0.5]  # the gateway's count of the Assist traffic
    assert [r["usage_mismatch"] for r in records] == [True, True]
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.9])  # rises as for an honest device
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.help_requests, budget.reported_help_requests, budget.mismatches) == (8 + 2, 0, 3)  # + eval
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'gateway_usage_mismatch_total{task="math"} 3.0' in text


def test_training_follows_a_tau_schedule_set_on_the_gateway_only(gateway, keys, tmp_path):
    from dagrpo.errors import UserError
    from trainer.train import train

    # 8 responses a step: the second step's responses are budgeted at 0.5, the third at 0.9.
    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1), (8, 0.5), (16, 0.9)], mode="meter")
    with pytest.raises(UserError, match=r"tau = 0.3 but the gateway's tau is 0.1 for task 'math'"):
        train(run_config(gateway, keys.d1, tau=0.3), tmp_path / "wrong", engine_factory=HalfHelp(), progress=False)
    with pytest.raises(UserError, match="tau_schedule"):
        bad = run_config(gateway, keys.d1, extra=['phases=[{tasks=["math"], steps=2, tau_schedule=[[0, 0.1]]}]'])
        train(bad, tmp_path / "sched", engine_factory=HalfHelp(), progress=False)
    train(run_config(gateway, keys.d1, steps=3), tmp_path / "run", engine_factory=HalfHelp(), progress=False)
    records = read_metrics(tmp_path / "run")
    assert [r["tau"] for r in records] == [0.1, 0.5, 0.9]
    assert {r["tau_source"] for r in records} == {"gateway"}
    # lambda <- lambda + 0.5 * (0.5 - tau): 0.5 -> 0.7 -> 0.7 -> 0.5
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.7, 0.5])


class CrashAfterReport(Exception):
    pass


def test_a_crash_between_report_and_checkpoint_counts_the_step_once(gateway, keys, tmp_path, monkeypatch):
    """Step 2 is reported, the process dies before its checkpoint; --resume runs step 2 again
    with the same keys (run id kept): the gateway counts it once, lambda is the uninterrupted one."""
    import trainer.context as context_mod
    from trainer.train import train

    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.1)], mode="meter")
    make = context_mod.make_cloud

    class Crashing(UnderReporting):
        def report_usage(self, task, responses, help_requests, **kw):
            t = self.cloud.report_usage(task, responses, help_requests, **kw)
            if kw["idempotency_key"] == "train/2/usage":
                raise CrashAfterReport
            return t

    monkeypatch.setattr(context_mod, "make_cloud", lambda *a, **kw: Crashing(make(*a, **kw)))
    cfg = run_config(gateway, keys.d1, steps=3)
    with pytest.raises(CrashAfterReport):
        train(cfg, tmp_path / "run", engine_factory=HalfHelp(), progress=False)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["step"] == 1
    monkeypatch.setattr(context_mod, "make_cloud", make)
    monkeypatch.setenv("DAGRPO_GATEWAY_KEY", keys.d1)  # the key is never in config.toml: resume reads it here
    train(None, tmp_path / "run", resume=True, engine_factory=HalfHelp(), progress=False)
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.responses, budget.help_requests) == (3 * 8 + 2, 3 * 4 + 2)  # 3 steps once, + eval
    assert budget.cloud_calls == 3 * 2 + 2 and budget.mismatches == 0
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["lambda_next"] for r in records] == pytest.approx([0.7, 0.9, 1.1])


def test_evaluation_is_metered_like_serving_and_a_refusal_is_a_fallback(gateway, keys):
    from collab.gateway_client import GatewayCloud
    from collab.tasks import get_task
    from trainer.config import ModelConfig
    from trainer.evaluate import evaluate
    from trainer.models import load_base
    from trainer.prompting import messages, prompt_ids

    # Enforce mode, one credit and tau 0: the first help request is served, the second refused.
    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.0)], mode="enforce", burst=1.0)
    _, tokenizer = load_base(ModelConfig(name_or_path="tiny-random"))
    engine = HalfHelp()(None, tokenizer)  # one greedy answer per prompt: HELP
    tests = {"math": get_task("math").examples("test", n=2, seed=0)}
    with GatewayCloud(gateway.address, keys.d1, retries=0) as cloud:
        res = evaluate(engine, lambda ex: prompt_ids(tokenizer, ex), messages, cloud, tests,
                       max_new_tokens=48, math_grader="exact", tag="t")["math"]
        assert (res.n, res.cloud_refused, res.collab_ratio) == (2, 1, 1.0)
        again = evaluate(engine, lambda ex: prompt_ids(tokenizer, ex), messages, cloud, tests,
                         max_new_tokens=48, math_grader="exact", tag="t")["math"]
        assert again == res  # the same evaluation again replays: same answers, counted once
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1", task="math").budgets[0]
    assert (budget.responses, budget.help_requests, budget.cloud_calls, budget.denials) == (2, 2, 1, 1)
    assert budget.mismatches == 0
