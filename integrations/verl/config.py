"""Settings of the DA-GRPO batch reward: the `dagrpo` section of the verl config (fails at load).

The dual fields mean what they mean in trainer/config.py's TrainConfig (trainer.dual reads them
through `make_controller`); the cloud is trainer/config.py's CloudConfig.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainer.config import CloudConfig


class DagrpoVerlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lambda_init: float = Field(0.5, ge=0, description="initial dual variable (paper 0.5)")
    eta_lambda: float = Field(1e-2, ge=0, description="dual learning rate (paper 1e-2; the PID's K_i)")
    lambda_controller: Literal["ascent", "pid"] = Field("ascent", description="trainer/dual.py")
    pid_kp: float = Field(0.5, ge=0, description="pid: proportional gain")
    pid_kd: float = Field(0.0, ge=0, description="pid: derivative gain")
    lambda_max: float = Field(2.0, gt=0, description="pid: cap on lambda")
    tau: float | None = Field(None, ge=0, le=1, description="budget for runs without a gateway (the "
                              "gateway's tau wins and this must then be unset)")
    math_grader: Literal["exact", "equiv"] = Field("exact", description="paper: exact string match")
    seed: int = Field(0, description="reference cloud: seed of its right/wrong draws")
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    state_dir: str = Field(description="where the per-step lambda state is kept (state.py); put it "
                           "next to verl's checkpoints")
    checkpoint_dir: str = Field("", description="verl's trainer.default_local_dir: a resumed verl run "
                                "restores lambda at its latest_checkpointed_iteration.txt")

    @model_validator(mode="after")
    def _tau_has_one_owner(self):
        if self.cloud.backend == "gateway" and self.tau is not None:
            raise ValueError("tau: the gateway owns tau with cloud.backend = 'gateway' (DESIGN.md 7); unset it")
        if self.cloud.backend != "gateway" and self.tau is None:
            raise ValueError("tau is required without a gateway (cloud.backend = 'reference')")
        return self


def load(settings: dict) -> DagrpoVerlConfig:
    """`settings`: the OmegaConf section as a plain dict (resolved), nested cloud settings included."""
    return DagrpoVerlConfig.model_validate(dict(settings))
