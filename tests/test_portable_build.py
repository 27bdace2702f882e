"""The llama.cpp build the project installs runs on any x86-64 CPU since AVX2 (no AMX, no AVX-512,
no -march=native), and pip's wheel cache cannot bring another build back."""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build-llama.sh"


def _house(args: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_CMAKE_ARGS"}
    if args is not None:
        env["LLAMA_CMAKE_ARGS"] = args
    env["PY"] = os.environ.get("PYTHON", "python3")
    return subprocess.run(["bash", str(SCRIPT), "--print-house"], capture_output=True, text=True, env=env,
                          check=True, cwd=ROOT).stdout.strip()


def test_wheelhouse_is_keyed_on_the_build_flags():
    default, native = _house(None), _house("-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF")
    assert default.startswith(".wheelhouse/llama-cpp-python/") and native != default
    assert _house(None) == default  # deterministic: the same flags find the same wheel


def test_default_flags_are_portable():
    text = SCRIPT.read_text()
    x86 = re.search(r'x86_64\|amd64\)\s*\n\s*echo "([^"]+)"', text).group(1).split()
    assert "-DGGML_NATIVE=OFF" in x86 and "-DLLAVA_BUILD=OFF" in x86
    assert {"-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"} <= set(x86)
    assert not any(f.startswith("-DGGML_AMX") and f.endswith("=ON") for f in x86)
    assert "--no-cache-dir" in text and "--force-reinstall" in text


def test_every_install_path_uses_the_portable_flags():
    assert "scripts/build-llama.sh" in (ROOT / "Makefile").read_text()
    for dockerfile in ("Dockerfile.edge", "Dockerfile.cloud-llm"):
        text = (ROOT / "deploy" / dockerfile).read_text()
        assert re.search(r'ARG LLAMA_CMAKE_ARGS="[^"]*-DGGML_NATIVE=OFF[^"]*-DLLAVA_BUILD=OFF', text), dockerfile
        assert "ENV CMAKE_ARGS=${LLAMA_CMAKE_ARGS}" in text, dockerfile


@pytest.mark.integration
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 instruction check")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not installed")
def test_installed_llama_cpp_has_no_amx_or_avx512():
    import llama_cpp

    libs = glob.glob(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu*.so*"))
    assert libs, "libggml-cpu not found next to llama_cpp"
    asm = subprocess.run(["objdump", "-d", libs[0]], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"\s(tilezero|tileloadd|tdpb\w+)\s", asm), "AMX instructions in the build"
    assert not re.search(r"%zmm\d", asm), "AVX-512 registers in the build"
    assert re.search(r"%ymm\d", asm), "no AVX2 code at all: not the build we asked for"
