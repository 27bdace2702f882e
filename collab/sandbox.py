"""Run untrusted, model-written Python and judge it against tests.

This is the only file that knows about bubblewrap. Each run is one short-lived process tree:

    bwrap (host: root)                    new net/pid/ipc/uts namespaces, new session,
      --unshare-net ...                   dies with its parent, all capabilities dropped
      └─ python -I -S -c _DRIVER          but CAP_SETUID/CAP_SETGID; read-only /usr, /lib*,
           1. reads the source (as root)  the interpreter's prefix; /proc, /dev minimal;
           2. sets rlimits (CPU, AS,      cwd = a private size-capped tmpfs /tmp; the program
              NPROC, CORE)                file read-only at /box. Nothing of the host's
           3. drops to a fresh uid        /work, /root, /home or /tmp is visible.
           4. exec()s program + tests

Why a fresh uid: RLIMIT_NPROC counts processes per real uid and is not enforced for root, so the
driver switches to a random unprivileged uid (`_SANDBOX_UID_BASE` + 30 random bits) that no
other process uses; a fork bomb then hits the limit inside its own sandbox. Dropping from root
to that uid also clears every capability. When this module itself runs as an ordinary user,
bwrap gets `--unshare-user` instead and the limit counts inside that fresh user namespace.

The parent enforces wall time and output size: it reads stdout+stderr up to
`output_bytes`, then kills the whole process group (bwrap's pid namespace takes every
descendant with it).

Passing code tests requires exit code 0 *and* a per-run random token, which the driver reads
from stdin before the program starts and prints after the tests returned. A program that calls
`sys.exit(0)` or `os._exit(0)` before the tests run therefore fails (a reward hack RL finds).

Without bwrap (or with DAGRPO_SANDBOX=rlimit) the same driver runs directly on the host with
rlimits and the uid drop only: no namespaces, so network and world-readable files are reachable.
That fallback logs a warning once per process. DAGRPO_SANDBOX=bwrap requires bwrap.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BACKEND_ENV = "DAGRPO_SANDBOX"  # "auto" (default) | "bwrap" | "rlimit"
_SANDBOX_UID_BASE = 1 << 30  # fresh uids are drawn from [2^30, 2^31): far above real accounts
_MB = 1 << 20

# Runs inside the sandbox as `python -I -S -c _DRIVER UID CPU_S MEMORY_BYTES NPROC SOURCE MODE`.
# MODE "tests": the first stdin line is the token to print once the program+tests returned.
_DRIVER = r"""
import builtins, os, resource, sys
def _drive():
    uid, cpu_s, memory_bytes, nproc = (int(a) for a in sys.argv[1:5])
    path, mode = sys.argv[5], sys.argv[6]
    token = sys.stdin.readline().strip() if mode == "tests" else ""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to non-root: all capabilities are cleared
    builtins.exit = builtins.quit = sys.exit  # normally added by `site`, which -S skips
    sys.argv = ["main.py"]
    exec(compile(source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    if token:  # to fd 1 directly: the program may have replaced sys.stdout
        sys.__stdout__.flush()
        os.write(1, ("\n" + token + "\n").encode())
_drive()
"""


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: float = 5  # CPU seconds (RLIMIT_CPU, rounded up to whole seconds)
    wall_s: float = 10  # wall-clock seconds, enforced by the parent
    memory_mb: int = 512  # address space (RLIMIT_AS); also the size of the private tmpfs
    processes: int = 64  # RLIMIT_NPROC for the sandbox's own uid
    output_bytes: int = 65536  # stdout+stderr read before the run is killed

    def __post_init__(self) -> None:
        for name in ("cpu_s", "wall_s", "memory_mb", "processes", "output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    returncode: int  # negative: killed by that signal
    timed_out: bool  # the wall-clock limit was hit
    reason: str  # "ok" or why it failed, e.g. "cpu time limit", "output limit"
    stdout: str
    stderr: str
    duration_s: float


@dataclass(frozen=True)
class _Run:
    returncode: int
    timed_out: bool
    overflow: bool
    stdout: str
    stderr: str
    duration_s: float


def run_code_tests(
    program: str, tests: str, entry_point: str = "", limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `program` then `tests` in one sandboxed interpreter; pass iff they finish with exit 0.

    When `tests` define `check(` and `entry_point` is given, `check(<entry_point>)` is called
    (HumanEval convention).
    """
    source = f"{program}\n\n{tests}\n"
    if entry_point and re.search(r"^def check\(", tests, re.MULTILINE):
        source += f"\ncheck({entry_point})\n"
    token = secrets.token_hex(16)
    run = _run(source, f"{token}\n", "tests", limits or SandboxLimits())
    completed = run.stdout.endswith(f"\n{token}\n")
    stdout = run.stdout[: -len(token) - 2] if completed else run.stdout
    reason = _failure(run) or ("ok" if completed else "exited before the tests finished")
    return SandboxResult(
        passed=reason == "ok",
        returncode=run.returncode,
        timed_out=run.timed_out,
        reason=reason,
        stdout=stdout,
        stderr=run.stderr,
        duration_s=run.duration_s,
    )


def run_stdio_tests(
    program: str, cases: list[tuple[str, str]], limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `program` once per (stdin, expected_stdout) case, each in a fresh sandbox.

    Pass iff every run exits 0 and its stdout equals the expected one after stripping trailing
    whitespace of every line and trailing blank lines. Stops at the first failing case; the
    result carries that case's output and the summed duration.
    """
    if not cases:
        raise ValueError("run_stdio_tests needs at least one (stdin, expected_stdout) case")
    limits = limits or SandboxLimits()
    total_s = 0.0
    for i, (stdin, expected) in enumerate(cases):
        run = _run(program, stdin, "stdio", limits)
        total_s += run.duration_s
        reason = _failure(run)
        if not reason and _normalize(run.stdout) != _normalize(expected):
            reason = "wrong output"
        if reason:
            return _result(run, f"case {i}: {reason}", total_s)
    return _result(run, "ok", total_s)


def _result(run: _Run, reason: str, duration_s: float) -> SandboxResult:
    return SandboxResult(
        passed=reason == "ok",
        returncode=run.returncode,
        timed_out=run.timed_out,
        reason=reason,
        stdout=run.stdout,
        stderr=run.stderr,
        duration_s=duration_s,
    )


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _failure(run: _Run) -> str:
    """Why the run failed, or "" when it exited 0 within every limit."""
    if run.overflow:
        return "output limit"
    if run.timed_out:
        return "wall time limit"
    if run.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "cpu time limit"  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one
    if run.returncode != 0 and "MemoryError" in run.stderr:
        return "memory limit"
    if run.returncode < 0:
        return f"killed by signal {signal.Signals(-run.returncode).name}"
    if run.returncode != 0:
        return f"exit code {run.returncode}"
    return ""


def _run(source: str, stdin: str, mode: str, limits: SandboxLimits) -> _Run:
    """One sandboxed interpreter run of `source` with `stdin`, killed at the first limit."""
    use_bwrap = _backend() == "bwrap"
    with tempfile.TemporaryDirectory(prefix="dagrpo-sandbox-") as tmp:
        box = Path(tmp)
        (box / "main.py").write_text(source, encoding="utf-8")
        (box / "stdin").write_text(stdin, encoding="utf-8")
        work = box / "work"  # the fallback's cwd; bwrap uses a tmpfs instead
        work.mkdir(mode=0o777)
        work.chmod(0o1777)  # mkdir's mode is masked by umask
        uid = _SANDBOX_UID_BASE + secrets.randbelow(_SANDBOX_UID_BASE)
        if use_bwrap:
            argv = _bwrap_argv(box, limits) + _driver_argv(uid, limits, "/box/main.py", mode)
        else:
            argv = _driver_argv(uid, limits, str(box / "main.py"), mode)
        with open(box / "stdin", "rb") as stdin_file:
            return _execute(argv, stdin_file, str(work), limits, use_bwrap)


def _driver_argv(uid: int, limits: SandboxLimits, path: str, mode: str) -> list[str]:
    cpu_s = max(1, int(-(-limits.cpu_s // 1)))  # ceil: RLIMIT_CPU takes whole seconds
    numbers = [uid, cpu_s, limits.memory_mb * _MB, limits.processes]
    return [str(_python()), "-I", "-S", "-c", _DRIVER, *map(str, numbers), path, mode]


def _execute(argv: list[str], stdin, cwd: str, limits: SandboxLimits, bwrap: bool) -> _Run:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
        start_new_session=True,  # one process group to kill
    )
    try:
        out, err, timed_out, overflow = _collect(proc, start + limits.wall_s, limits.output_bytes)
    finally:
        _kill_group(proc)
    returncode = proc.returncode
    if bwrap and returncode > 128:
        returncode = 128 - returncode  # bwrap reports "killed by signal s" as exit 128+s
    if timed_out or overflow:
        returncode = -signal.SIGKILL  # the parent killed it
    return _Run(
        returncode=returncode,
        timed_out=timed_out,
        overflow=overflow,
        stdout=out[: limits.output_bytes].decode("utf-8", "replace"),
        stderr=err[: limits.output_bytes].decode("utf-8", "replace"),
        duration_s=time.monotonic() - start,
    )


def _collect(
    proc: subprocess.Popen, deadline: float, max_bytes: int
) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr until both close, the deadline passes, or more than `max_bytes` came.

    Returns (stdout, stderr, timed_out, overflow); the caller kills the process group.
    """
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    total = 0
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and total <= max_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                chunks[key.fd].append(data)
                total += len(data)
        still_open = bool(sel.get_map())
    overflow = total > max_bytes
    timed_out = still_open and not overflow
    if not (timed_out or overflow):
        try:  # both pipes closed, yet the process may still run
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), timed_out, overflow


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group (bwrap's pid namespace goes down with it) and reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def _bwrap_argv(box: Path, limits: SandboxLimits) -> list[str]:
    argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]  # unprivileged bwrap needs a user namespace
    argv += _system_binds()
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(limits.memory_mb * _MB), "--tmpfs", "/tmp"]
    argv += ["--ro-bind", str(box), "/box", "--chdir", "/tmp", "--"]
    return argv


@functools.cache
def _system_binds() -> tuple[str, ...]:
    """Read-only binds for what the interpreter needs: /usr, /lib*, its own prefix."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = Path(os.path.realpath(sys.base_prefix))
    if not prefix.is_relative_to("/usr"):
        # bwrap would create the missing parents (e.g. /root) with the host's 0700 modes, and
        # the dropped uid could not import anything more; open the path, not the contents.
        for parent in reversed(prefix.parents[:-1]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", str(prefix), str(prefix)]
    return tuple(argv)


@functools.cache
def _python() -> Path:
    """The base interpreter (not the venv's): the sandbox needs no site-packages."""
    path = Path(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not path.is_file():
        raise RuntimeError(f"sandbox: base interpreter not found at {path}")
    return path


def _backend() -> str:
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "bwrap", "rlimit"):
        raise ValueError(f"{BACKEND_ENV} must be auto, bwrap or rlimit, got {choice!r}")
    if choice == "rlimit" or (choice == "auto" and shutil.which("bwrap") is None):
        _warn_fallback(choice)
        return "rlimit"
    _check_bwrap()
    return "bwrap"


@functools.cache
def _warn_fallback(choice: str) -> None:
    log.warning(
        "sandbox: running model code WITHOUT bubblewrap (%s=%s%s): only rlimits and a uid drop "
        "protect this host; network and world-readable files are reachable",
        BACKEND_ENV,
        choice,
        "" if choice == "rlimit" else ", bwrap not found",
    )


@functools.cache
def _check_bwrap() -> None:
    """Fail loudly once if bwrap cannot build our sandbox here (instead of failing every test)."""
    if shutil.which("bwrap") is None:
        raise RuntimeError(f"sandbox: {BACKEND_ENV}=bwrap but bwrap is not installed")
    with tempfile.TemporaryDirectory(prefix="dagrpo-sandbox-") as tmp:
        argv = _bwrap_argv(Path(tmp), SandboxLimits()) + [str(_python()), "-I", "-S", "-c", "pass"]
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        detail = probe.stderr.strip()
        raise RuntimeError(f"sandbox: bwrap cannot start a sandbox here: {detail}")
