"""The simulator's configuration: [train] is the trainer's own TrainConfig, [sim] the game.

Of [train] the simulator reads: method (da_grpo | da_grpo_tracked), G, batch_prompts, lr,
weight_decay, max_grad_norm, std_scaling, lambda_init, eta_lambda, cost_baseline,
cost_baseline_ema, lambda_controller, pid_kp, pid_kd, lambda_max, skip_zero_steps, seed. The rest
(model, tokens, engines) has no meaning in the game and is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from dagrpo.errors import UserError
from trainer.config import TrainConfig, StrictConfig, apply_override, read_toml

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "sim"
# The four time-varying budgets of paper appendix D.3 (names as in configs/experiments/micro_tau_schedules.toml).
SCHEDULES = {"up": [0.1, 0.3, 0.5, 0.7], "down": [0.7, 0.5, 0.3, 0.1],
             "mixed_a": [0.1, 0.7, 0.3, 0.5], "mixed_b": [0.5, 0.3, 0.7, 0.1]}


class GameConfig(StrictConfig):
    p_local: list[float] = Field(min_length=1, description="local success probability of each difficulty class")
    weights: list[float] = Field(default_factory=list, description="share of prompts in each class (empty: equal)")
    cloud_accuracy: float = Field(0.97, ge=0, le=1, description="chance the cloud's answer is right (paper 0.97)")
    format_fail: float = Field(0.0, ge=0, lt=1, description="chance a response breaks the step format")
    ask_init: float = Field(0.3, gt=0, lt=1, description="initial P(ask) in every class")
    policy: Literal["learn", "best_response"] = Field(
        "learn", description="learn: logits trained by the eq. 8 estimator; best_response: held at the best "
        "response to the current lambda (theory checks)"
    )
    br_temperature: float = Field(0.0, ge=0, description="best_response: entropy smoothing (0: the hard best response)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam mimics the real runs' AdamW")
    taus: list[float] = Field([0.3], min_length=1, description="tau of each segment, in order")
    segment_steps: int = Field(310, ge=1, description="steps per tau segment")

    @field_validator("p_local", "taus")
    @classmethod
    def _probabilities(cls, v):
        if any(not 0.0 <= x <= 1.0 for x in v):
            raise ValueError("every value must lie in [0, 1]")
        return v

    @model_validator(mode="after")
    def _weights_match(self):
        if self.weights and (len(self.weights) != len(self.p_local) or min(self.weights) <= 0):
            raise ValueError(f"sim.weights: one positive weight per class ({len(self.p_local)}), got {self.weights}")
        return self

    def class_weights(self) -> list[float]:
        w = self.weights or [1.0] * len(self.p_local)
        return [x / sum(w) for x in w]


class SimConfig(StrictConfig):
    train: TrainConfig = Field(default_factory=TrainConfig)
    sim: GameConfig

    @model_validator(mode="after")
    def _dual_method(self):
        if self.train.method not in ("da_grpo", "da_grpo_tracked"):
            raise ValueError(f"train.method: the simulator runs da_grpo or da_grpo_tracked, not {self.train.method!r}")
        return self

    def total_steps(self) -> int:
        return self.sim.segment_steps * len(self.sim.taus)

    def tau_at(self, step: int) -> float:
        """tau of a 0-based step."""
        return self.sim.taus[step // self.sim.segment_steps]


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
        raise UserError(f"no simulator preset {name!r} in {PRESET_DIR}; known: {known}")
    return path


def load_sim_config(path: str | Path, overrides: list[str] = ()) -> SimConfig:
    """TOML preset -> `--set` overrides -> validated SimConfig; UserError names the field."""
    data = read_toml(path, "simulator config")
    for assignment in overrides:
        apply_override(data, assignment)
    return sim_config_from_dict(data)


def sim_config_from_dict(data: dict) -> SimConfig:
    try:
        return SimConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()]
        raise UserError("invalid simulator config: " + "; ".join(lines)) from None
