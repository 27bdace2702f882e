"""Gateway configuration: defaults < TOML file (`--config`) < environment `GATEWAY_*` < CLI flags.

Nested fields use `__` in the environment: `GATEWAY_TASKS__MATH__TAU=0.3`. A bad value fails at
load with pydantic's message naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource,
)

from collab import budget as b


class TaskBudget(BaseModel):
    """The budget of one task: a constant tau or a schedule, the mode, the credit cap, the window."""

    tau: float | None = Field(None, ge=0.0, le=1.0, description="constant share of responses that may ask for help")
    schedule: list[tuple[int, float]] | None = Field(
        None, description="[[from_responses, tau], ...] keyed on the device's lifetime responses")
    mode: Literal["meter", "enforce"] = Field("meter", description="meter: count only; enforce: refuse without credit")
    burst: float = Field(4.0, ge=1.0, description="credit cap, in help requests")
    window_responses: int = Field(256, ge=1, description="responses per ratio window")

    @model_validator(mode="after")
    def _valid_policy(self) -> TaskBudget:
        if (self.tau is None) == (self.schedule is None):
            raise ValueError("give exactly one of tau or schedule")
        self.policy()  # raises ValueError naming the field (schedule, tau, burst, ...)
        return self

    def policy(self) -> b.Policy:
        steps = [(0, self.tau)] if self.schedule is None else self.schedule
        return b.Policy(tuple((int(s), b.to_ppm(t)) for s, t in steps), self.mode,
                        b.to_ppm(self.burst), self.window_responses)


class DeviceLimits(BaseModel):
    """What one device key can claim and use, whatever it reports (docs/security.md). The first
    four are per (device, task), in the store, shared by every gateway process; the rpc_* ones
    are per device in each gateway process."""

    responses_per_s: float = Field(100.0, ge=0.001, description="reported responses believed per second, "
                                   "sustained; beyond: not counted, the report flagged")
    responses_burst: int = Field(4096, ge=1, le=b.MAX_BURST, description="reported responses believed at once")
    assists_per_s: float = Field(20.0, ge=0.001, description="Assist grants per second, sustained (both modes)")
    assists_burst: int = Field(256, ge=1, le=b.MAX_BURST, description="Assist grants at once")
    rpc_per_s: float = Field(200.0, gt=0, description="RPCs per second per device and gateway process "
                             "(token bucket); beyond: RESOURCE_EXHAUSTED")
    rpc_burst: int = Field(400, ge=1, description="RPCs at once per device and gateway process")
    rpc_concurrent: int = Field(64, ge=1, description="RPCs in flight per device and gateway process")

    def store_limits(self) -> b.Limits:
        return b.Limits(b.per_ms_ppm(self.responses_per_s), self.responses_burst,
                        b.per_ms_ppm(self.assists_per_s), self.assists_burst)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid")

    host: str = Field("127.0.0.1", description="gRPC listen address")
    tls_cert: Path | None = Field(None, description="PEM certificate chain of the gateway (TLS on when set)")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(None, description="PEM CA of client certificates: set, every "
                                       "client must present one it signed (mutual TLS)")
    allow_insecure: bool = Field(False, description="serve plaintext on a non-loopback host (keys in "
                                 "clear text: only on a network you trust)")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: pick a free one)")
    workers: int = Field(1, ge=1, le=64, description="gateway processes sharing the port (SO_REUSEPORT); "
                         ">1 needs redis_url and a fixed port")
    metrics_port: int = Field(9464, ge=-1, le=65535, description="Prometheus /metrics port (0: free one, -1: off)")
    keys_file: Path = Field(Path("gateway-keys.toml"), description="device and admin key hashes")
    redis_url: str = Field("", description="redis://host:port/db, or redis+cluster://host:port[,...] for a Redis "
                           "Cluster; empty: the embedded SQLite store")
    sqlite_path: Path = Field(Path("gateway.db"), description="SQLite store file when redis_url is empty")
    idempotency_ttl_s: float = Field(86400.0, gt=0, description="how long a retry gets the same answer")

    backend: Literal["reference", "openai"] = Field("reference", description="the cloud model")
    reference_accuracy: float = Field(0.97, ge=0.0, le=1.0, description="reference backend: share answered correctly")
    reference_latency_s: float = Field(0.0, ge=0.0, description="reference backend: added latency per call")
    reference_seed: int = Field(0, description="reference backend: seed of the correct/wrong draw")
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible server")
    openai_model: str = Field("default", description="model name sent to the server")
    openai_api_key: SecretStr = Field(SecretStr("none"), description="key for the OpenAI-compatible server")
    openai_timeout_s: float = Field(60.0, gt=0, description="per-attempt timeout")
    openai_retries: int = Field(2, ge=0, le=10, description="retries on timeouts, 429 and 5xx")
    openai_max_tokens: int = Field(512, ge=1, description="completion token cap")
    openai_temperature: float = Field(0.0, ge=0.0, le=2.0)

    max_prompt_chars: int = Field(32768, ge=1, description="longer prompts are refused (INVALID_ARGUMENT)")
    max_messages: int = Field(64, ge=1, description="chat messages per Assist")
    max_example_id_chars: int = Field(256, ge=1, description="longer example ids are refused")
    max_completion_chars: int = Field(262144, ge=1, description="a longer cloud completion is an error "
                                      "(UNAVAILABLE), never stored")
    max_message_bytes: int = Field(262144, ge=4096, description="gRPC request size cap (bytes); must hold "
                                   "a prompt of max_prompt_chars in UTF-8")
    max_concurrent_rpcs: int = Field(1024, ge=1, description="RPCs in flight per gateway process; beyond: "
                                     "RESOURCE_EXHAUSTED")
    limits: DeviceLimits = Field(default_factory=DeviceLimits, description="per-device claim, call and RPC limits")
    keys_poll_s: float = Field(2.0, gt=0, description="how often the keys file is checked for changes "
                               "(also reloaded on SIGHUP)")
    grace_s: float = Field(10.0, ge=0, description="graceful shutdown: time in-flight calls get to finish")
    tasks: dict[str, TaskBudget] = Field(default_factory=dict, description="per-task budgets (initial; admins change them live)")
    default_budget: TaskBudget = Field(
        default_factory=lambda: TaskBudget(tau=0.3), description="budget of built-in tasks not listed in `tasks`")

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, v: dict[str, TaskBudget]) -> dict[str, TaskBudget]:
        from cloud_gateway.store.base import NAME_RE

        bad = [t for t in v if not NAME_RE.match(t)]
        if bad:
            raise ValueError(f"task names must match {NAME_RE.pattern}: {bad}")
        return v

    @model_validator(mode="after")
    def _message_holds_a_prompt(self) -> GatewaySettings:
        need = 4 * self.max_prompt_chars + 4096  # UTF-8: at most 4 bytes a character, plus the other fields
        if self.max_message_bytes < need:
            raise ValueError(f"max_message_bytes ({self.max_message_bytes}) cannot hold a prompt of "
                             f"max_prompt_chars={self.max_prompt_chars}: give at least {need}")
        return self

    @model_validator(mode="after")
    def _tls_or_loopback(self) -> GatewaySettings:
        from collab.channel import plaintext_refusal

        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: file not found: {path}")
        refusal = plaintext_refusal(self.host, "on", "--insecure (allow_insecure)")
        if self.tls_cert is None and refusal and not self.allow_insecure:
            raise ValueError(refusal)
        return self

    @model_validator(mode="after")
    def _workers_share_one_store(self) -> GatewaySettings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError("workers > 1 needs redis_url: SQLite is one file per process, Redis is the shared store")
        if self.workers > 1 and self.port == 0:
            raise ValueError("workers > 1 needs a fixed port: the workers share it (SO_REUSEPORT)")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = settings_cls.model_config.get("toml_file")
        sources = [init_settings, env_settings]
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides) -> GatewaySettings:
    """Settings from an optional TOML file, the environment and explicit overrides (highest)."""
    if config is None:
        return GatewaySettings(**overrides)
    if not Path(config).is_file():
        raise FileNotFoundError(f"gateway config file not found: {config}")

    class FromFile(GatewaySettings):
        model_config = SettingsConfigDict(toml_file=config)

    return FromFile(**overrides)
