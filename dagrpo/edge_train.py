"""`dagrpo edge train`: DA-GRPO on the device against the gateway, then hot-swap the result.

1. Load the trainer config (TOML + --set) and point its cloud at the gateway
   (`cloud.backend = "gateway"`): every help request goes through Assist, and the dual update
   uses the gateway's measured ratio (telemetry-driven lambda), as in `trainer/train.py`.
2. Run `trainer.train.train` (torch + peft; this command is the only edge path that imports torch).
3. Export RUN_DIR/adapter to a GGUF LoRA for the agent's base GGUF (`llama_runtime.export`).
4. POST the run dir to the running agent's /v1/adapter: the agent loads the adapter between two
   requests and reports the run's lambda as `edge_lambda`.

The trained base must be the model the agent serves: SmolLM2 (`model.name_or_path = "smollm2"`,
the default) for the SmolLM2 GGUF, or a Hugging Face directory whose GGUF the agent runs (`--base`).

The one orchestration module above the runtimes: it uses the trainer and the llama.cpp runtime,
and reaches the agent only over HTTP; trainer and edge_agent never import each other
(tests/test_import_graph.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from dagrpo.errors import UserError
from llama_runtime.export import export_adapter, find_adapter_dir


def point_at_gateway(cfg, gateway: dict, api_key: str):
    """`cfg` with `cloud.backend = "gateway"` and the given CloudConfig fields (address, TLS
    files, api_key_file); `api_key` is held as a secret, never written to RUN_DIR/config.toml."""
    from trainer.config import config_from_dict

    data = cfg.model_dump(mode="json")
    data["cloud"] = {**data["cloud"], **gateway, "backend": "gateway"}
    out = config_from_dict(data)  # UserError naming the field
    out.cloud.api_key = api_key or cfg.cloud.api_key
    return out


def edge_train(config: str, overrides: list[str], out: str, *, gateway: dict, api_key: str,
               agent: str | None, base_gguf: str, max_steps: int | None = None) -> dict:
    from trainer.config import load_config
    from trainer.train import train

    cfg = point_at_gateway(load_config(config, overrides), gateway, api_key)
    if cfg.model.name_or_path == "tiny-random":
        raise UserError("model.name_or_path='tiny-random' has no GGUF for the agent to run")
    ctx = train(cfg, out, max_steps=max_steps, progress=True)
    gguf = export_adapter(out, base_gguf, find_adapter_dir(out) / "adapter.gguf")
    result = {"run_dir": str(Path(out)), "steps": ctx.step, "lambda": ctx.lam, "adapter": str(gguf)}
    if agent:
        result["agent"] = push_adapter(agent, out)
    return result


def push_adapter(agent: str, path: str, timeout_s: float = 60.0) -> dict:
    """POST /v1/adapter on the running agent; its answer (the loaded adapter)."""
    url = agent.rstrip("/") + "/v1/adapter"
    try:
        r = httpx.post(url, json={"path": str(Path(path).resolve())}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise UserError(f"the agent at {agent} is unreachable ({exc}); the adapter is in {path}")
    if r.status_code != 200:
        raise UserError(f"the agent at {agent} refused the adapter: {r.status_code} {r.text}")
    return r.json()["adapter"]
