"""The reward manager's state across verl steps: the lambda controller, the run id, the step count.

`train_step` is one DA-GRPO step of trainer/step.py without the policy update (verl does that):
score the batch with lambda_t, return r - lambda_t * c, report usage, lambda_{t+1} from the
gateway's ratio, persist. `validate` scores a validation batch (cloud calls and usage reported,
like trainer/evaluate.py) and never moves lambda.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collab.cloud import CloudClient
from collab.tasks.base import Example
from integrations.verl.config import DagrpoVerlConfig
from integrations.verl.state import append_record, read_records, record_at, resumed_step
from integrations.verl.step import BatchScores, Usage, report_batch, score_batch, shaped_rewards
from trainer.cloud import make_cloud
from trainer.dual import controller_from_dict, make_controller

log = logging.getLogger("dagrpo.verl")


@dataclass(frozen=True)
class StepResult:
    step: int
    shaped: np.ndarray  # (N,) r - lambda * c, the sequence reward of each row
    scores: BatchScores
    usage: Usage
    lam: float  # lambda the step was shaped with
    lam_next: float  # after the dual update

    def extra_info(self) -> dict[str, list]:
        """Per-row values for verl's reward_extra_info (it stores them beside the batch)."""
        n = len(self.shaped)
        return {"dagrpo_reward": self.scores.rewards.tolist(), "dagrpo_cost": self.scores.costs.tolist(),
                "dagrpo_help_request": [s.help_request for s in self.scores.scored],
                "dagrpo_correct": [s.correct for s in self.scores.scored],
                "dagrpo_lambda": [self.lam] * n, "dagrpo_collab_ratio": [self.usage.ratio] * n}


class DualRewardLoop:
    def __init__(self, cfg: DagrpoVerlConfig, cloud: CloudClient | None = None):
        self.cfg = cfg
        records, start = read_records(Path(cfg.state_dir)), resumed_step(cfg.checkpoint_dir)
        if start == 0 and records:
            raise ValueError(f"{cfg.state_dir} holds the lambda state of another run (and verl resumes "
                             "no checkpoint): choose another state_dir, or set checkpoint_dir to resume")
        if start:
            rec = record_at(records, start)
            self.run_id, self.dual = rec["run_id"], controller_from_dict(rec["dual"])
        else:
            self.run_id, self.dual = uuid.uuid4().hex[:12], make_controller(cfg)
        self.step = start
        self.cloud = cloud if cloud is not None else make_cloud(cfg.cloud, cfg.seed, self.run_id)
        self._val_calls: dict[int, int] = {}

    @property
    def lam(self) -> float:
        return self.dual.lam

    def train_step(self, examples: list[Example], texts: list[str], uids) -> StepResult:
        step, key = self.step + 1, f"train/{self.step + 1}"
        scores = score_batch(self.cloud, examples, texts, uids, key, self.cfg.math_grader)
        lam = self.dual.lam
        shaped = shaped_rewards(scores.rewards, scores.costs, lam)
        usage = report_batch(self.cloud, examples, scores.scored, key, self.cfg.tau)
        if usage.mismatch:
            log.warning("CLOUD AND DEVICE DISAGREE on the help ratio of step %d: gateway %.4f, device %.4f "
                        "(the gateway's is used)", step, usage.ratio, usage.device_ratio)
        lam_next = self.dual.update(usage.ratio, usage.tau)
        self.step = step
        append_record(Path(self.cfg.state_dir), {"step": step, "run_id": self.run_id, "dual": self.dual.to_dict()})
        return StepResult(step, shaped, scores, usage, lam, lam_next)

    def validate(self, examples: list[Example], texts: list[str], uids) -> BatchScores:
        """Keys `val/<steps done>/<k>`: a validation replayed after a resume is counted once."""
        k = self._val_calls.get(self.step, 0)
        self._val_calls[self.step] = k + 1
        key = f"val/{self.step}/{k}"
        scores = score_batch(self.cloud, examples, texts, uids, key, self.cfg.math_grader)
        report_batch(self.cloud, examples, scores.scored, key, self.cfg.tau)
        return scores
