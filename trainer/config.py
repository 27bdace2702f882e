"""Run configuration: typed, documented, validated at load (TOML preset -> --set overrides).

Every field fails loudly with its dotted name (`train.G: ...`) when it is wrong. The resolved
configuration is written to RUN_DIR/config.toml, and `dagrpo eval --run` / resume read it back.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from collab.tasks import FORMAT_DRILLS, TASK_GROUPS, list_tasks
from dagrpo.errors import UserError
from trainer.warmup import WarmupConfig

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class StrictConfig(BaseModel):
    """A config section: unknown keys and badly typed assignments fail loudly."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(StrictConfig):
    name_or_path: str = Field("smollm2", description='"smollm2", "tiny-random", or a HF model directory')
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA alpha (scale = alpha / r)")
    lora_dropout: float = Field(
        0.0, ge=0, lt=1, description="LoRA dropout; 0 keeps the trained policy equal to the sampler"
    )
    lora_targets: list[str] = Field(list(LORA_TARGETS), min_length=1, description="modules given LoRA")
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="auto: bf16 on CUDA, else fp32")
    device: str = Field("auto", description='"auto", "cpu", "cuda", "cuda:1", ...')
    init_adapter: str = Field(
        "", description="start the LoRA from this peft adapter directory (its own rank/alpha/targets are used)"
    )
    threads: int = Field(
        0, ge=0, description="torch CPU threads (0: torch's default). Use 1 on a shared, oversubscribed "
        "machine: OpenMP barriers then cost more than the second core gains"
    )

    @field_validator("name_or_path")
    @classmethod
    def _model_exists(cls, v: str) -> str:
        if v in ("smollm2", "tiny-random"):
            return v
        if not (Path(v) / "config.json").is_file():
            raise ValueError(f"no model directory with a config.json at {v!r} (or use 'smollm2' / 'tiny-random')")
        return v

    @field_validator("init_adapter")
    @classmethod
    def _adapter_exists(cls, v: str) -> str:
        if v and not (Path(v) / "adapter_config.json").is_file():
            raise ValueError(f"no peft adapter (adapter_config.json) at {v!r}")
        return v


# `train.method = "da_grpo_tracked"`: these defaults, each still overridable (docs/simulator.md says why).
TRACKED = {"cost_baseline": "tau", "lambda_controller": "pid", "skip_zero_steps": True}
# `train.method = "da_grpo_knob"`: the paper's DA-GRPO with the help knob in the loop (trainer/knob_loop.py).
KNOBBED = {"rollout_knob": True, "engine": "llamacpp", "knob_trigger_weight": 0.0, "knob_mode": "step"}
FLAVOURS = {"da_grpo_tracked": TRACKED, "da_grpo_knob": KNOBBED}


class TrainConfig(StrictConfig):
    method: str = Field("da_grpo", description="advantage method: da_grpo (the paper), da_grpo_tracked (DA-GRPO "
                        "with the TRACKED options as defaults), da_grpo_knob (the paper + rollout_knob), or one in trainer.methods")
    method_args: dict[str, float] = Field(
        default_factory=dict, description="settings of a trainer.methods baseline (keys in its module docstring)"
    )
    G: int = Field(4, ge=2, description="responses per prompt (group size); the estimator needs G >= 2")
    batch_prompts: int = Field(2, ge=1, description="prompts per step (B); a step has B*G responses")
    max_new_tokens: int = Field(96, ge=1, description="generation limit per response, tokens")
    temperature: float = Field(1.0, gt=0, description="sampling temperature in training (eval is greedy)")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate on the LoRA parameters")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0, description="gradient-norm clip")
    lambda_init: float = Field(0.5, ge=0, description="initial dual variable")
    eta_lambda: float = Field(1e-2, ge=0, description="dual learning rate (the PID controller's K_i)")
    # Options beyond the paper (trainer/advantages.py, trainer/dual.py); the defaults are the paper.
    cost_baseline: Literal["group", "tau", "running"] = Field(
        "group", description="baseline of the cost advantage: group mean (paper), tau, or a running mean of "
        "the measured ratio; tau/running give an all-ask group a push away from asking"
    )
    cost_baseline_ema: float = Field(0.9, ge=0, lt=1, description="running cost baseline: EMA factor per step")
    lambda_controller: Literal["ascent", "pid"] = Field(
        "ascent", description="ascent: projected dual ascent (paper eq. 3); pid: PID Lagrangian (Stooke et al. "
        "2020) with K_i = eta_lambda, warm start lambda_init, cap lambda_max and anti-windup"
    )
    pid_kp: float = Field(0.5, ge=0, description="pid: proportional gain on J_c_hat - tau")
    pid_kd: float = Field(0.0, ge=0, description="pid: derivative gain on a rising J_c_hat")
    lambda_max: float = Field(2.0, gt=0, description="pid: cap on lambda (asking never pays once lambda > ~1.1)")
    skip_zero_steps: bool = Field(
        False, description="no optimizer step on a batch whose advantages are all zero (else AdamW still "
        "moves on momentum)"
    )
    rollout_knob: bool = Field(
        False, description="sample rollouts and evaluate with the help knob (collab.help_knob): a help bias per "
        "task, calibrated to tau at each phase start on knob_calib_n val queries and moved after every step by "
        "integral feedback on the measured ratio (llamacpp engine only; trainer/knob_loop.py)"
    )
    knob_mode: Literal["anchor", "step"] = Field(
        "anchor", description="rollout_knob: how the rollouts' bias is set. anchor: calibrated at the phase start, "
        "then the last step's ask scores calibrated plus integral feedback (one update behind the policy); step: "
        "solved on each step's own paths, decoded with every ask refused, the asks then drawn at that bias (the "
        "step's expected ratio is tau; trainer/knob_loop.py)"
    )
    knob_gain: float = Field(1.0, ge=0, description="rollout_knob, knob_mode anchor: feedback gain (1 = one Newton "
                             "step to tau)")
    knob_calib_n: int = Field(8, ge=1, description="rollout_knob: val queries (G samples each) to calibrate on")
    knob_trigger_weight: float = Field(
        1.0, ge=0, description="rollout_knob: loss weight of the help trigger's tokens of an asking response (1: "
        "trained like every token; 0: the bias alone sets how often the model asks, the LoRA learns the rest)"
    )
    std_scaling: Literal["none", "group", "batch"] = Field("none", description="std scaling after combining")
    ppo_epochs: int = Field(1, ge=1, description="optimizer passes over each batch (PPO-style when > 1)")
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip (used when ppo_epochs > 1)")
    kl_beta: float = Field(0.0, ge=0, description="weight of the KL to the reference policy (the starting LoRA)")
    micro_batch: int = Field(8, ge=1, description="responses per forward/backward chunk (memory only)")
    seed: int = 0
    train_pool: int = Field(512, ge=1, description="train examples drawn per task; steps sample from it")
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at phase ends)")
    eval_n: int = Field(16, ge=1, description="held-out test examples per task at each evaluation")
    eval_tasks: list[str] = Field(default_factory=list, description="evaluate only these tasks (each once "
                                  "seen); empty: every task seen so far")
    eval_max_new_tokens: int | None = Field(None, ge=1, description="eval generation limit (default: max_new_tokens)")
    eval_at_start: bool = Field(True, description="evaluate the untrained model before step 1")
    eval_samples: int = Field(4, ge=0, description="K responses per held-out query sampled at `temperature` "
                              "for the sampled help rate and its 95% Wilson interval (0: greedy only)")
    math_grader: Literal["exact", "equiv"] = Field("exact", description="paper: exact string match")
    save_every: int = Field(1, ge=1, description="write adapter + state every N steps (resume point)")
    # Speed (docs/speed.md): rollout engine and the lean policy-gradient pass (trainer/lean.py).
    engine: Literal["torch", "llamacpp"] = Field(
        "torch", description="rollout engine: torch generate (reference) or llama.cpp on the GGUF + current LoRA"
    )
    engine_gguf: str = Field("", description="llamacpp: base GGUF (default: the SmolLM2 file for 'smollm2')")
    engine_threads: int = Field(2, ge=1, description="llamacpp: CPU threads (1 is faster on an oversubscribed CPU)")
    engine_n_seq_max: int = Field(16, ge=1, description="llamacpp: sequences decoded in one batch")
    engine_n_ctx: int = Field(8192, ge=64, description="llamacpp: KV cells shared by those sequences")
    tis_cap: float = Field(2.0, gt=0, description="llamacpp + ppo_epochs > 1: truncated importance weight cap")
    lean_pass: bool = Field(True, description="logits only at completion positions (same loss and gradients)")
    share_prompt: bool = Field(True, description="lean pass: a group's prompt runs once, its KV shared by G rows")
    grad_checkpointing: bool = Field(False, description="recompute activations in backward (needs share_prompt=false)")

    @model_validator(mode="before")
    @classmethod
    def _tracked_flavour(cls, data):
        """`method = "da_grpo_tracked"` / `"da_grpo_knob"`: DA-GRPO with that flavour's options as
        defaults (TRACKED / KNOBBED), each still overridable."""
        if isinstance(data, dict) and data.get("method") in FLAVOURS:
            data = {**FLAVOURS[data["method"]], **data}
        return data

    @model_validator(mode="after")
    def _pid_needs_integral_gain(self):
        if self.lambda_controller == "pid" and self.eta_lambda <= 0:
            raise ValueError("train.eta_lambda: the pid controller uses it as K_i and needs it > 0")
        if self.lambda_controller == "pid" and self.lambda_init > self.lambda_max:
            raise ValueError(f"train.lambda_init {self.lambda_init} exceeds train.lambda_max {self.lambda_max}")
        return self

    @model_validator(mode="after")
    def _knob_needs_llamacpp(self):
        if self.rollout_knob and self.engine != "llamacpp":
            raise ValueError("train.rollout_knob: the help knob samples on llama.cpp; set train.engine = \"llamacpp\"")
        return self

    @model_validator(mode="after")
    def _checkpointing_without_cache(self):
        if self.grad_checkpointing and self.lean_pass and self.share_prompt:
            raise ValueError("train.grad_checkpointing: transformers disables the KV cache under checkpointing, "
                             "so it needs train.share_prompt = false")
        return self


class CloudConfig(StrictConfig):
    backend: Literal["reference", "gateway"] = "reference"
    accuracy: float = Field(0.97, ge=0, le=1, description="reference backend: chance the answer is right")
    address: str = Field("", description="gateway backend: host:port")
    # A secret: never written to RUN_DIR/config.toml (exclude), never shown in a repr (SecretStr).
    api_key: SecretStr = Field(SecretStr(""), exclude=True, description="gateway backend: the device key "
                               "(else api_key_file, else env DAGRPO_GATEWAY_KEY)")
    api_key_file: str = Field("", description="gateway backend: file holding the device key")
    tls: bool = Field(False, description="gateway backend: TLS with the system's CA roots (implied by tls_ca)")
    tls_ca: str = Field("", description="gateway backend: PEM CA that signed the gateway's certificate")
    tls_cert: str = Field("", description="gateway backend: PEM client certificate (mutual TLS)")
    tls_key: str = Field("", description="gateway backend: PEM private key of tls_cert")
    insecure: bool = Field(False, description="gateway backend: allow plaintext to a non-loopback gateway")

    @model_validator(mode="after")
    def _gateway_needs_address(self):
        if self.backend == "gateway" and not self.address:
            raise ValueError("cloud.address is required when cloud.backend = 'gateway'")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("cloud.tls_cert and cloud.tls_key go together")
        return self


class PhaseConfig(StrictConfig):
    name: str = ""
    tasks: list[str] = Field(default_factory=list, description="task names trained in this phase")
    group: str | None = Field(None, description="a task group (group1, group2) instead of tasks")
    steps: int = Field(ge=1)
    tau: float | None = Field(None, ge=0, le=1, description="budget: share of responses that may ask")
    tau_schedule: list[tuple[int, float]] | None = Field(
        None, description="[[phase step, tau], ...]: tau from that (0-based) step of the phase on"
    )

    @field_validator("tau_schedule")
    @classmethod
    def _schedule_ok(cls, v):
        if v is None:
            return v
        if not v or v[0][0] != 0:
            raise ValueError("the schedule must start at step 0")
        if any(b[0] <= a[0] for a, b in zip(v, v[1:])):
            raise ValueError("schedule steps must increase")
        if any(not 0.0 <= t <= 1.0 for _, t in v):
            raise ValueError("every tau must lie in [0, 1]")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.tasks) == bool(self.group):
            raise ValueError("give exactly one of `tasks` or `group`")
        if (self.tau is None) == (self.tau_schedule is None):
            raise ValueError("give exactly one of `tau` or `tau_schedule`")
        return self

    def tau_at(self, phase_step: int) -> float:
        """The budget at a 0-based step of this phase."""
        if self.tau is not None:
            return self.tau
        return [t for s, t in self.tau_schedule if s <= phase_step][-1]

    def task_names(self) -> list[str]:
        if self.tasks:
            return list(self.tasks)
        return list(TASK_GROUPS[self.group])


class RunConfig(StrictConfig):
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    phases: list[PhaseConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_tasks(self):
        known = list_tasks()
        for i, phase in enumerate(self.phases):
            if phase.group is not None and phase.group not in TASK_GROUPS:
                raise ValueError(f"phases.{i}.group: unknown group {phase.group!r}; known: {sorted(TASK_GROUPS)}")
            for t in phase.task_names():
                if t not in known:
                    raise ValueError(f"phases.{i}.tasks: unknown task {t!r}; known: {known}")
                if t in FORMAT_DRILLS:  # the warm-up's tasks: what it saw must never be trained or evaluated
                    raise ValueError(f"phases.{i}.tasks: {t!r} is a format drill of the warm-up, never trained "
                                     "in a phase nor evaluated")
        trained = self.phase_tasks()
        for t in self.train.eval_tasks:
            if t not in trained:
                raise ValueError(f"train.eval_tasks: {t!r} is not a task of any phase; phase tasks: {trained}")
        return self

    def phase_tasks(self, upto_phase: int | None = None) -> list[str]:
        """Tasks of the phases up to and including `upto_phase` (all by default), in order of appearance."""
        phases = self.phases if upto_phase is None else self.phases[: upto_phase + 1]
        return list(dict.fromkeys(t for p in phases for t in p.task_names()))

    def eval_task_names(self, upto_phase: int) -> list[str]:
        """Tasks evaluated at the end of phase `upto_phase`: those seen so far, in order of appearance,
        restricted to train.eval_tasks when it is set."""
        return [t for t in self.phase_tasks(upto_phase) if not self.train.eval_tasks or t in self.train.eval_tasks]


def _parse_value(text: str):
    """A --set value as TOML (numbers, booleans, lists, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` to nested dicts/lists in place (`phases.0.steps=3`)."""
    if "=" not in assignment:
        raise UserError(f"--set expects key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {key}: no list element {part!r}")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise UserError(f"--set {key}: no list element {last!r}")
        node[int(last)] = _parse_value(text.strip())
    else:
        node[last] = _parse_value(text.strip())


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        lines.append(f"{loc}: {err['msg']}")
    return "invalid config: " + "; ".join(lines)


def config_from_dict(data: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(_describe(exc)) from None


def read_toml(path: str | Path, what: str) -> dict:
    """Parse a TOML file; a missing file or invalid TOML is a UserError naming `what` and the path."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> RunConfig:
    """Preset file (or `base` dict) -> overrides -> validated RunConfig; UserError names the field."""
    data: dict = dict(base or {})
    if path is not None:
        data = read_toml(path, "config file")
    for assignment in overrides:
        apply_override(data, assignment)
    return config_from_dict(data)


def to_toml(cfg: RunConfig) -> str:
    """The resolved config as TOML (read back by load_config)."""
    data = cfg.model_dump(mode="json")
    out = []
    for section in ("model", "train", "cloud", "warmup"):
        out.append(f"[{section}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in data[section].items() if v is not None]
        out.append("")
    for phase in data["phases"]:
        out.append("[[phases]]")
        out += [f"{k} = {_toml_value(v)}" for k, v in phase.items() if v is not None and v != []]
        out.append("")
    return "\n".join(out)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # inline table (train.method_args)
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
