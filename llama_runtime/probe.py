"""The llama.cpp probe: load the model and decode a few tokens in a child process.

A llama.cpp built for another CPU (a `GGML_NATIVE=ON` build that emits AMX or AVX-512 on a
virtual machine that lists but does not grant them) dies with SIGILL at its first decode; in a
child process that is a finding, reported in one line with the rebuild command, not the end of the
caller. `dagrpo doctor`, `dagrpo demo` and `dagrpo edge serve` run it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from dagrpo.errors import UserError

REBUILD = "PY=<your venv>/bin/python bash scripts/build-llama.sh   (or: make install)"
PROBE_TIMEOUT_S = 120.0
_LLAMA_PROBE = "from llama_runtime.llm import probe; import sys; print(probe(sys.argv[1]))"


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


def probe_llama(model_path: str) -> tuple[bool, str]:
    ok, detail = run_child(_LLAMA_PROBE, model_path)
    return ok, detail.replace("the child process", "llama.cpp")


def require_llama(model_path: str) -> None:
    """The probe before a command that decodes: a crash becomes a UserError naming the cause."""
    ok, detail = probe_llama(model_path)
    if not ok:
        raise UserError(detail)
