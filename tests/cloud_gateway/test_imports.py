"""The gateway and its client stay light: no torch, no llama_cpp; redis only in the Redis store."""

import subprocess
import sys


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


def test_server_imports_no_torch_or_llama_cpp():
    mods = loaded_after("import cloud_gateway.server, cloud_gateway.backends.reference, "
                        "cloud_gateway.backends.openai_backend, cloud_gateway.store.sqlite")
    assert not {"torch", "llama_cpp", "transformers"} & mods
    assert "redis" not in mods  # the SQLite default never loads redis


def test_client_imports_neither_redis_nor_torch():
    assert not {"torch", "redis", "llama_cpp"} & loaded_after("import collab.gateway_client")


def test_cli_module_is_argparse_only():
    assert not {"grpc", "redis", "torch"} & loaded_after("import cloud_gateway.cli")
