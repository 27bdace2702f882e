"""Typed `train.method_args` of the baselines: validated at method construction, errors name the key."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dagrpo.errors import UserError
from trainer.methods import Stateless


class HierarchicalArgs(BaseModel):
    """Assistance reward of the fixed hierarchical methods, per task kind (paper table 3)."""

    model_config = ConfigDict(extra="forbid")
    assist_math: float = Field(0.2, ge=0, le=1, description="reward of a correct cloud-assisted math answer")
    assist_code: float = Field(0.05, ge=0, le=1, description="... code answer")
    assist_mcq: float = Field(0.4, ge=0, le=1, description="... multiple-choice (QA) answer")

    def assist(self, kind: str) -> float:
        return {"math": self.assist_math, "code": self.assist_code, "mcq": self.assist_mcq}[kind]


class GvpoArgs(HierarchicalArgs):
    beta: float = Field(0.1, ge=0, description="GVPO's KL weight beta (implicit reward beta*log pi/pi_ref)")


def parse_args(model: type[BaseModel], method_args: dict, method: str) -> BaseModel:
    try:
        return model.model_validate(dict(method_args))
    except ValidationError as exc:
        msgs = "; ".join(f"train.method_args.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"invalid settings for method {method!r}: {msgs}") from None


def method_args(cfg) -> dict:
    """`cfg.method_args` when the trainer's config has the field, else {} (paper defaults)."""
    return dict(getattr(cfg, "method_args", None) or {})


def task_kind(task: str) -> str:
    from collab.tasks import get_task

    return get_task(task).kind


class NeedsStep(Stateless):
    """Mixin for methods that read the step's task/tau: fail loudly if the driver never told us."""

    task: str | None = None
    tau: float | None = None

    def begin_step(self, ctx, *, task: str, tau: float, prompts=None, rollouts=None) -> None:
        self.task, self.tau = task, tau

    def _require_step(self) -> None:
        if self.task is None:
            raise RuntimeError(f"method {self.name!r} needs the driver to call begin_step() before advantages()")
