"""The experiment preset: its schema ([experiment], [base], [[scenarios]]) and each run's config.

A preset (configs/experiments/*.toml) holds [experiment] (methods, seeds, report kind, router and
warm-up settings), [base] (a training config: model, train, cloud, phases) and [[scenarios]] (each
may replace the phases and add `--set`-style overrides). Every run's config is resolved and
validated by `run_config` before anything runs.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from dagrpo.errors import UserError
from trainer.config import RunConfig, StrictConfig, apply_override, load_config, read_toml
from trainer.methods import EDGE_FAMILY, METHODS
from trainer.warmup import WarmupConfig

_GENERATORS = {"math": "collab.tasks.math_gen", "science": "collab.tasks.science",
               "code": "collab.tasks.code_gen", "knowledge": "collab.tasks.knowledge"}


class TaskSpec(StrictConfig):
    """A built-in generator restricted to some difficulty levels, registered under a new name."""

    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_-]*$")
    base: Literal["math", "science", "code", "knowledge"]
    levels: list[int] = Field(min_length=1, description="difficulty levels 1..5 to draw from")

    def register(self) -> None:
        from collab.tasks import register_task

        module = importlib.import_module(_GENERATORS[self.base])
        register_task(module.make_task(name=self.name, levels=tuple(self.levels)), replace=True)


class ExperimentSpec(StrictConfig):
    name: str = Field(min_length=1, description="preset name (used for the default output directory)")
    kind: Literal["table1", "lambda_init", "tau_schedules", "tau_sweep"] = Field(
        description="which paper result the report reproduces (table 1, fig. 4, fig. 10, fig. 9)")
    methods: list[str] = Field(min_length=1, description="methods to run, from trainer.methods.METHODS")
    seeds: list[int] = Field(min_length=1, description="train.seed of each repetition")
    router_train_n: int = Field(16, ge=2, description="router: train queries per task for the classifier")
    router_val_n: int = Field(16, ge=1, description="router: val queries per task for the threshold")
    router_l2: float = Field(10.0, gt=0, description="router: L2 weight of the logistic regression")
    method_set: dict[str, list[str]] = Field(default_factory=dict,
                                             description="extra --set overrides per method")
    tasks: list[TaskSpec] = Field(default_factory=list, description="level-restricted tasks to register "
                                  "(in this process only) before the configs are resolved")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    knob: bool = Field(False, description="also evaluate every self-asking method with the help bias "
                       "calibrated to tau at each phase end (rows `<method>+knob`; experiment/knob.py)")
    knob_val_n: int = Field(16, ge=2, description="knob: val queries per task to calibrate the bias on")

    @field_validator("methods")
    @classmethod
    def _known(cls, v):
        bad = [m for m in v if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; known: {list(METHODS)}")
        if len(set(v)) != len(v):
            raise ValueError("a method is listed twice")
        return v


class Scenario(StrictConfig):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    forgetting_task: str | None = Field(None, description="task whose forgetting is measured (default: "
                                        "the first task of the first phase)")
    set: list[str] = Field(default_factory=list, description="--set style overrides of the base config")
    phases: list[dict] | None = Field(None, description="replaces base.phases")

    def report_task(self, cfg: RunConfig) -> str:
        """The task the report measures: `forgetting_task`, else the first task of the first phase."""
        return self.forgetting_task or cfg.phases[0].task_names()[0]


class Preset(StrictConfig):
    experiment: ExperimentSpec
    base: dict = Field(default_factory=dict)
    scenarios: list[Scenario] = Field(min_length=1)
    _warmup_dir: Path | None = PrivateAttr(None)  # OUT/warmup/adapter once run_all knows OUT


def load_preset(path: str | Path, overrides: list[str] = ()) -> Preset:
    """Read and validate a preset; `overrides` apply to [base] (e.g. train.eval_n=4)."""
    path = Path(path)
    data = read_toml(path, "experiment preset")
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path}: invalid preset: {msgs}") from None
    for task in preset.experiment.tasks:
        task.register()
    for assignment in overrides:
        apply_override(preset.base, assignment)
    return preset


def warmup_dir(preset: Preset) -> Path | None:
    """Where the warm-up model lives (set by run_all), or None without a warm-up."""
    return preset._warmup_dir if preset.experiment.warmup.steps else None


def run_config(preset: Preset, scenario: Scenario, method: str, seed: int) -> RunConfig:
    """The resolved training config of one (scenario, method, seed); the edge family trains edge_only."""
    data = copy.deepcopy(preset.base)
    wdir = warmup_dir(preset)
    if wdir is not None and (wdir / "adapter_config.json").is_file():
        data.setdefault("model", {})["init_adapter"] = str(wdir)
    if scenario.phases is not None:
        data["phases"] = copy.deepcopy(scenario.phases)
    train_method = "edge_only" if method in EDGE_FAMILY else method
    sets = [*scenario.set, *preset.experiment.method_set.get(method, []),
            f'train.method="{train_method}"', f"train.seed={seed}"]
    try:
        return load_config(None, sets, base=data)
    except UserError as exc:
        raise UserError(f"scenario {scenario.name!r}, method {method!r}: {exc}") from None


def report_config(preset: Preset, scenario: Scenario) -> RunConfig:
    """The config the report reads a scenario's phases, tasks and taus from (any method gives the same)."""
    return run_config(preset, scenario, "da_grpo", preset.experiment.seeds[0])
