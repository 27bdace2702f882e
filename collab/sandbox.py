"""Run untrusted, model-written Python and judge it against tests, outside the program's reach.

This is the only file that knows about bubblewrap. The threat model is in docs/security.md: the
program is hostile, the tests (dataset code) are trusted.

Code tests (`run_code_tests`): the judge is this process, never the program's interpreter.

    parent (this process)                           sandbox: bwrap ... python -I -S -c _DRIVER
      1. starts the sandbox, drains its               1. reads program + codec (as root), sets
         stdout/stderr (output cap, wall time)           rlimits, drops to a fresh uid
      2. reads ["ready", [callable names]]  <-------  2. exec()s the program into a dict, sends
      3. exec()s the TESTS here, with a proxy            the names of its top-level callables
         for each name; a call sends  ------------->  3. serves calls: [target, args, kwargs]
         [target, args, kwargs] and decodes  <------     -> ["ok", value] | ["err", type, text]
         the reply into plain built-in values
      4. passes iff the tests ran to the end
         and the sandbox stayed within its limits

Values cross as tagged JSON (`collab/sandbox_codec.py`) on a dedicated pipe pair, decoded here
into genuine built-in objects: an object with a forged `__eq__`, patched builtins, a run token
read back from stdin or the driver's frame, fake lines written to any fd -- none of it can turn
a failing assert into a pass. Objects that are not plain data (an instance of the program's
`class Solution`) stay in the sandbox; the tests get a handle whose method calls go back there.

Stdio tests (`run_stdio_tests`): one fresh sandbox per case; its stdout is compared here, and the
expected output never enters the sandbox.

The sandbox (bwrap):

    bwrap --unshare-net/pid/ipc/uts         a private network, pid, IPC and UTS namespace; a new
      --new-session --die-with-parent       session; every capability dropped but
      --seccomp FD (collab/seccomp.py)      CAP_SETUID/CAP_SETGID (as root); no new user
      read-only /usr, /lib*, the prefix     namespace, mount or keyring (seccomp); cwd = a
      /tmp, /dev/shm: size-capped tmpfs     size-capped private tmpfs /tmp; /dev read-only;
      /dev read-only; the box at /box       the program at /box/main.py

Why a fresh uid: RLIMIT_NPROC counts processes per real uid and is not enforced for root, so the
driver switches to a random unprivileged uid (`_SANDBOX_UID_BASE` + 30 random bits) that no
other process uses; a fork bomb then hits the limit inside its own sandbox. Dropping from root
to that uid also clears every capability. When this module itself runs as an ordinary user,
bwrap gets `--unshare-user` instead and the limit counts inside that fresh user namespace.

Fail closed: without bwrap the sandbox refuses to run. `DAGRPO_SANDBOX=rlimit` is an explicit
opt-in to rlimits plus the uid drop only (root only; warned on every run): no namespaces, so the
network and world-readable files are reachable; every process of the run's fresh uid is killed
at the end (a `setsid()` grandchild included).
"""

from __future__ import annotations

import builtins
import functools
import json
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
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from collab import cgroup
from collab import sandbox_codec as codec
from collab.seccomp import filter_program

log = logging.getLogger(__name__)

BACKEND_ENV = "DAGRPO_SANDBOX"  # "bwrap" (default) | "rlimit" (explicit opt-in, root only)
_SANDBOX_UID_BASE = 1 << 30  # fresh uids are drawn from [2^30, 2^31): far above real accounts
_MB = 1 << 20
_NOFILE = 256  # RLIMIT_NOFILE: open files per process
_SHM_BYTES = 16 * _MB  # size of /dev/shm (a tmpfs: its pages are host memory)
_MESSAGE_BYTES = 1 << 22  # one reply from the program; a longer line is a protocol violation
_MAX_NAMES = 10_000  # top-level callables the program may report
_CALLS_CHECK = re.compile(r"^def check\(", re.MULTILINE)

# Runs inside the sandbox as
# `python -I -S -c _DRIVER UID CPU_S MEMORY_BYTES NPROC FSIZE NOFILE PROGRAM MODE [CODEC IN OUT]`.
# MODE "stdio": run the program. MODE "serve": run it, then answer calls on the fds IN/OUT.
_DRIVER = r"""
import builtins, os, resource, sys
def _drive():
    uid, cpu_s, memory_bytes, nproc, fsize, nofile = (int(a) for a in sys.argv[1:7])
    path, mode = sys.argv[7], sys.argv[8]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    codec = {"__name__": "codec"}
    if mode == "serve":
        with open(sys.argv[9], encoding="utf-8") as f:
            exec(f.read(), codec)
        requests, replies = int(sys.argv[10]), int(sys.argv[11])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to non-root: all capabilities are cleared
    builtins.exit = builtins.quit = sys.exit  # normally added by `site`, which -S skips
    sys.argv = ["main.py"]
    program = {"__name__": "__main__", "__builtins__": builtins}
    exec(compile(source, "main.py", "exec"), program)
    if mode == "serve":
        _serve(program, codec, os.fdopen(requests, "rb"), os.fdopen(replies, "w"))
def _serve(program, codec, requests, replies):
    names = [n for n, v in program.items() if callable(v) and not n.startswith("__")]
    kept = []
    def keep(obj):
        kept.append(obj)
        return len(kept) - 1
    def send(message):
        replies.write(codec["json"].dumps(message, separators=(",", ":")) + "\n")
        replies.flush()
    send(["ready", names])
    for line in requests:
        try:
            target, args, kwargs = codec["loads"](line, kept.__getitem__)
            function = program[target] if type(target) is str else getattr(*target)
            reply = ["ok", codec["encode"](function(*args, **kwargs), keep)]
        except Exception as exc:
            try:
                reply = ["err", type(exc).__name__, str(exc)[:1000]]
            except Exception:
                reply = ["err", type(exc).__name__, ""]
        send(reply)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the judge closed the requests: no atexit handlers, no waiting for threads
_drive()
"""

# Built-in exception types a failing call re-raises here (by name); any other is a RuntimeError.
# Not StopIteration: raised inside `map(candidate, xs)` it would end the iteration early, and
# `all(map(candidate, xs))` would pass.
_EXCEPTIONS = {
    name: kind
    for name, kind in vars(builtins).items()
    if isinstance(kind, type)
    and issubclass(kind, Exception)
    and not issubclass(kind, (StopIteration, StopAsyncIteration))
}


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: float = 5  # CPU seconds (RLIMIT_CPU, rounded up to whole seconds)
    wall_s: float = 10  # wall-clock seconds, enforced by the parent
    memory_mb: int = 512  # address space (RLIMIT_AS); also the size of each tmpfs, RLIMIT_FSIZE
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
    stderr: str  # the program's, then the traceback of a failing test
    duration_s: float


@dataclass(frozen=True)
class _Run:
    returncode: int
    timed_out: bool
    overflow: bool
    broken: str  # why the parent stopped listening to the program ("" if it did not)
    oom_killed: bool  # the run's cgroup hit its memory limit
    stdout: str
    stderr: str
    duration_s: float


class SandboxGone(Exception):
    """The program stopped answering: it exited, hit a limit, or broke the protocol."""


def run_code_tests(
    program: str, tests: str, entry_point: str = "", limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `program` in the sandbox, then `tests` here against proxies of its callables.

    Pass iff the tests run to the end without an exception and the sandbox stays within its
    limits. When `tests` define `check(` and `entry_point` is given, `check(<entry_point>)` is
    called (HumanEval convention).
    """
    with _Sandbox(program, "", "serve", limits or SandboxLimits()) as box:
        outcome, failure_trace = _judge(box, tests, entry_point)
    run = box.run
    limit = _failure(run)
    if outcome == "gone":
        reason = limit or "exited before the tests finished"
    elif outcome == "test failed: MemoryError":
        reason = "memory limit"  # raised inside a call, under RLIMIT_AS
    else:
        reason = limit or outcome
    return SandboxResult(
        passed=reason == "ok",
        returncode=run.returncode,
        timed_out=run.timed_out,
        reason=reason,
        stdout=run.stdout,
        stderr=run.stderr + failure_trace,
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
        with _Sandbox(program, stdin, "stdio", limits) as box:
            pass
        run = box.run
        total_s += run.duration_s
        reason = _failure(run)
        if not reason and _normalize(run.stdout) != _normalize(expected):
            reason = "wrong output"
        if reason:
            return _result(run, f"case {i}: {reason}", total_s)
    return _result(run, "ok", total_s)


def _judge(box: _Sandbox, tests: str, entry_point: str) -> tuple[str, str]:
    """Run the trusted `tests` here against the program's callables: (outcome, traceback).

    outcome is "ok", "gone" (the sandbox stopped answering) or "test failed: <exception>".
    """
    try:
        names = box.ready()
    except SandboxGone:
        return "gone", ""
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    # A program's `def abs(...)` must not replace the `abs` the tests call (unless it is the
    # function under test itself).
    exported = [n for n in names if n == entry_point or not hasattr(builtins, n)]
    namespace.update({name: _RemoteFunction(box, name, name) for name in exported})
    try:
        exec(compile(tests, "tests.py", "exec"), namespace)
        if entry_point and _CALLS_CHECK.search(tests):
            exec(compile(f"check({entry_point})\n", "tests.py", "exec"), namespace)
    except SandboxGone:
        return "gone", ""
    except Exception as exc:
        return f"test failed: {type(exc).__name__}", "".join(traceback.format_exception(exc))
    # A test that swallowed every exception must not pass a program that died under it.
    return ("gone", "") if box.gone else ("ok", "")


class _RemoteFunction:
    """A callable of the program: calling it runs it in the sandbox and decodes the result."""

    def __init__(self, box: _Sandbox, target: object, name: str) -> None:
        self._box, self._target, self.__name__ = box, target, name

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._box.call(self._target, args, kwargs)

    def __repr__(self) -> str:
        return f"<sandboxed {self.__name__}>"


class _RemoteObject:
    """An object that is not plain data and stayed in the sandbox; its methods run there."""

    def __init__(self, box: _Sandbox, handle: int) -> None:
        self._box, self._handle = box, handle

    def __getattr__(self, name: str) -> _RemoteFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        return _RemoteFunction(self._box, (self, name), name)

    def __repr__(self) -> str:
        return f"<sandboxed object {self._handle}>"


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
    if run.broken:
        return run.broken
    if run.oom_killed:
        return "memory limit"  # the whole run's pages, tmpfs included, over memory_mb
    if run.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "cpu time limit"  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one
    if run.returncode != 0 and "MemoryError" in run.stderr:
        return "memory limit"
    if run.returncode < 0:
        return f"killed by signal {signal.Signals(-run.returncode).name}"
    if run.returncode != 0:
        return f"exit code {run.returncode}"
    return ""


def _remote_exception(name: object, text: object) -> Exception:
    """The built-in exception a failed call stands for (by name only), else a RuntimeError."""
    if type(name) is not str or type(text) is not str:
        return RuntimeError("the program sent a malformed error")
    kind = _EXCEPTIONS.get(name)
    try:
        return kind(text) if kind is not None else RuntimeError(f"{name[:100]}: {text}")
    except Exception:  # a built-in that needs more arguments (UnicodeDecodeError, ...)
        return RuntimeError(f"{name}: {text}")


class _Sandbox:
    """One sandboxed interpreter: started on enter, killed with every descendant on exit.

    While it runs, the parent drains stdout/stderr (at most `output_bytes` in all) and, in
    "serve" mode, exchanges one-line messages on a dedicated pipe pair; every wait ends at the
    run's wall-clock deadline. After exit, `run` holds what happened.
    """

    def __init__(self, program: str, stdin: str, mode: str, limits: SandboxLimits) -> None:
        self._program, self._stdin, self._mode, self._limits = program, stdin, mode, limits
        self.gone = False
        self.run: _Run | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> _Sandbox:
        self._bwrap = _backend() == "bwrap"
        self._tmp = tempfile.TemporaryDirectory(prefix="dagrpo-sandbox-")
        box = Path(self._tmp.name)
        (box / "main.py").write_text(self._program, encoding="utf-8")
        (box / "codec.py").write_text(Path(codec.__file__).read_text(), encoding="utf-8")
        (box / "stdin").write_text(self._stdin, encoding="utf-8")
        work = box / "work"  # the fallback's cwd; bwrap uses a tmpfs instead
        work.mkdir(mode=0o777)
        work.chmod(0o1777)  # mkdir's mode is masked by umask
        self._uid = _SANDBOX_UID_BASE + secrets.randbelow(_SANDBOX_UID_BASE)
        inside = "/box" if self._bwrap else str(box)
        pass_fds: list[int] = []
        channel: list[str] = []
        if self._mode == "serve":
            req_r, self._req_w = os.pipe()
            self._rep_r, rep_w = os.pipe()
            pass_fds += [req_r, rep_w]
            channel = [f"{inside}/codec.py", str(req_r), str(rep_w)]
        argv = _driver_argv(self._uid, self._limits, f"{inside}/main.py", self._mode) + channel
        if self._bwrap:
            seccomp = _seccomp_fd()
            pass_fds.append(seccomp)
            argv = _bwrap_argv(box, self._limits, seccomp) + argv
        self._cgroup = _run_cgroup(self._uid, self._limits)
        if self._cgroup is not None:
            argv = self._cgroup.join_argv(argv)
        self._start = time.monotonic()
        self._deadline = self._start + self._limits.wall_s
        try:
            with open(box / "stdin", "rb") as stdin_file:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=stdin_file,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=str(work),
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
                    start_new_session=True,  # one process group to kill
                    pass_fds=pass_fds,
                )
        finally:
            for fd in pass_fds:  # the child's ends and the seccomp memfd
                os.close(fd)
        self._open_streams()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run = self._finish()
        finally:
            self._sel.close()
            self._tmp.cleanup()

    def _open_streams(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._out = {self._proc.stdout.fileno(): [], self._proc.stderr.fileno(): []}
        self._total = 0
        self._replies = b""
        self._outbox = b""
        self._exited = self._timed_out = self._overflow = False
        self._broken = ""
        self._requests_open = self._mode == "serve"
        for fd in self._out:
            self._sel.register(fd, selectors.EVENT_READ)
        self._pidfd = os.pidfd_open(self._proc.pid)
        self._sel.register(self._pidfd, selectors.EVENT_READ)
        if self._mode == "serve":
            os.set_blocking(self._req_w, False)
            self._sel.register(self._rep_r, selectors.EVENT_READ)

    def _finish(self) -> _Run:
        if self._mode == "serve":
            self._close_requests()  # the driver exits at EOF
        self._wait(lambda: self._exited, self._deadline)
        _kill_all(self._proc, self._uid, self._bwrap)
        self._wait(lambda: False, time.monotonic() + 1)  # drain what the dead wrote
        self._proc.wait()
        oom_killed = False
        if self._cgroup is not None:
            oom_killed = self._cgroup.oom_killed()
            self._cgroup.remove()
        for fd in [self._pidfd, *([self._rep_r] if self._mode == "serve" else [])]:
            os.close(fd)
        self._proc.stdout.close()
        self._proc.stderr.close()
        returncode = self._proc.returncode
        if self._bwrap and returncode > 128:
            returncode = 128 - returncode  # bwrap reports "killed by signal s" as exit 128+s
        if self._timed_out or self._overflow or self._broken:
            returncode = -signal.SIGKILL  # the parent killed it
        cap = self._limits.output_bytes
        out, err = self._out.values()  # stdout's chunks, then stderr's
        return _Run(
            returncode=returncode,
            timed_out=self._timed_out,
            overflow=self._overflow,
            broken=self._broken,
            oom_killed=oom_killed,
            stdout=b"".join(out)[:cap].decode("utf-8", "replace"),
            stderr=b"".join(err)[:cap].decode("utf-8", "replace"),
            duration_s=time.monotonic() - self._start,
        )

    # -- the call protocol ------------------------------------------------------------------------

    def ready(self) -> list[str]:
        """The program's top-level callable names, once it has run to its end."""
        message = self._message()
        if (
            len(message) != 2
            or message[0] != "ready"
            or type(message[1]) is not list
            or len(message[1]) > _MAX_NAMES
            or not all(type(n) is str and n.isidentifier() for n in message[1])
        ):
            raise self._break("malformed ready message")
        return message[1]

    def call(self, target: object, args: tuple, kwargs: dict) -> object:
        """Run `target(*args, **kwargs)` in the sandbox; its value, or its exception raised here."""
        if self.gone:
            raise SandboxGone("the sandbox is gone")
        self._outbox += codec.dumps((target, args, kwargs), self._handle).encode()
        message = self._message()
        if len(message) == 2 and message[0] == "ok":
            try:
                return codec.decode(message[1], functools.partial(_RemoteObject, self))
            except codec.CodecError as exc:
                raise self._break(f"bad value from the program: {exc}") from None
        if len(message) == 3 and message[0] == "err":
            raise _remote_exception(message[1], message[2])
        raise self._break("malformed reply")

    def _handle(self, value: object) -> int:
        if isinstance(value, _RemoteObject) and value._box is self:
            return value._handle
        raise codec.CodecError(f"cannot send a {type(value).__name__} into the sandbox")

    def _message(self) -> list:
        """The next reply line as a JSON list; SandboxGone if none comes in time."""
        got = self._wait(lambda: b"\n" in self._replies or self._exited, self._deadline)
        if not got or b"\n" not in self._replies:
            self.gone = True
            raise SandboxGone("the program stopped answering")
        line, _, self._replies = self._replies.partition(b"\n")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise self._break("a reply that is not JSON") from None
        if type(message) is not list or not message:
            raise self._break("a reply that is not a message")
        return message

    def _break(self, why: str) -> SandboxGone:
        """Stop listening to a program that broke the protocol, and kill it."""
        self.gone = True
        self._broken = self._broken or f"protocol violation: {why}"
        _kill_all(self._proc, self._uid, self._bwrap)
        return SandboxGone(why)

    def _close_requests(self) -> None:
        self._want_write(False)
        self._requests_open = False
        self._outbox = b""
        os.close(self._req_w)

    # -- the event loop ---------------------------------------------------------------------------

    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        """Pump stdout/stderr/replies/requests until `done()`; False at a limit or the deadline."""
        while not done():
            if self._overflow or self._broken:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out = self._timed_out or deadline == self._deadline
                return False
            self._want_write(bool(self._outbox))
            if not self._sel.get_map():
                return done()
            for key, events in self._sel.select(remaining):
                if events & selectors.EVENT_WRITE:
                    self._write_requests()
                if events & selectors.EVENT_READ:
                    self._read(key.fd)
        return True

    def _want_write(self, want: bool) -> None:
        if not self._requests_open:
            return
        registered = self._sel.get_map().get(self._req_w) is not None
        if want and not registered:
            self._sel.register(self._req_w, selectors.EVENT_WRITE)
        elif not want and registered:
            self._sel.unregister(self._req_w)

    def _write_requests(self) -> None:
        try:
            sent = os.write(self._req_w, self._outbox)
        except BrokenPipeError:
            sent = len(self._outbox)  # the driver is gone: its exit ends the wait
        self._outbox = self._outbox[sent:]

    def _read(self, fd: int) -> None:
        if fd == self._pidfd:
            self._exited = True
            self._sel.unregister(fd)
            return
        data = os.read(fd, 65536)
        if not data:
            self._sel.unregister(fd)
        elif fd in self._out:
            self._out[fd].append(data)
            self._total += len(data)
            self._overflow = self._total > self._limits.output_bytes
        else:
            self._replies += data
            if len(self._replies) > _MESSAGE_BYTES:
                self._break(f"a reply over {_MESSAGE_BYTES} bytes")


def _run_cgroup(uid: int, limits: SandboxLimits) -> cgroup.RunCgroup | None:
    """The run's own cgroup (memory_mb for all its pages, processes + a few for bwrap/sh)."""
    name = f"dagrpo-sandbox-{uid}-{secrets.token_hex(4)}"
    run = cgroup.create(name, limits.memory_mb * _MB, limits.processes + 8)
    if run is None:
        _warn_no_cgroup()
    return run


@functools.cache
def _warn_no_cgroup() -> None:
    log.warning(
        "sandbox: no cgroup for the runs (set %s to a delegated cgroup v2 directory, or run as "
        "root with cgroup v1 memory+pids): a run's memory is bounded per process only "
        "(processes x memory_mb, plus its tmpfs)",
        cgroup.CGROUP_ENV,
    )


def _driver_argv(uid: int, limits: SandboxLimits, path: str, mode: str) -> list[str]:
    cpu_s = max(1, int(-(-limits.cpu_s // 1)))  # ceil: RLIMIT_CPU takes whole seconds
    memory = limits.memory_mb * _MB
    numbers = [uid, cpu_s, memory, limits.processes, memory, _NOFILE]
    return [str(_python()), "-I", "-S", "-c", _DRIVER, *map(str, numbers), path, mode]


def _kill_all(proc: subprocess.Popen, uid: int, bwrap: bool) -> None:
    """SIGKILL the run and every descendant.

    bwrap: its pid namespace dies with the process group. The rlimit fallback: a `setsid()`
    child leaves the group, so every process of the run's fresh uid is killed too.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    if not bwrap:
        _kill_uid(uid)


_KILL_UID = (
    "import os, sys\nu = int(sys.argv[1])\nos.setgroups([])\nos.setresgid(u, u, u)\n"
    "os.setresuid(u, u, u)\ntry:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\n"
)


def _kill_uid(uid: int) -> None:
    """kill(-1) as `uid`: every process of that uid, atomically with respect to fork."""
    subprocess.run([str(_python()), "-I", "-S", "-c", _KILL_UID, str(uid)], check=True)


def _seccomp_fd() -> int:
    """A memfd holding the seccomp filter, read by bwrap (`--seccomp FD`); closed after start."""
    fd = os.memfd_create("dagrpo-seccomp")
    os.write(fd, _seccomp_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def _seccomp_program() -> bytes:
    return filter_program()


def _bwrap_argv(box: Path, limits: SandboxLimits, seccomp_fd: int) -> list[str]:
    argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]  # unprivileged bwrap needs a user namespace
    argv += _system_binds()
    argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]  # device nodes stay usable
    argv += ["--perms", "1777", "--size", str(_SHM_BYTES), "--tmpfs", "/dev/shm"]
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
    """bwrap unless the fallback was asked for explicitly; never a silent downgrade."""
    choice = os.environ.get(BACKEND_ENV, "bwrap")
    if choice not in ("bwrap", "rlimit"):
        raise ValueError(f"{BACKEND_ENV} must be bwrap or rlimit, got {choice!r}")
    if choice == "rlimit":
        if os.geteuid() != 0:
            raise RuntimeError(
                f"sandbox: {BACKEND_ENV}=rlimit needs root (the program runs as a fresh uid); "
                "install bubblewrap instead"
            )
        log.warning(
            "sandbox: running model code WITHOUT bubblewrap (%s=rlimit): only rlimits and a uid "
            "drop protect this host; network and world-readable files are reachable",
            BACKEND_ENV,
        )
        return "rlimit"
    if shutil.which("bwrap") is None:
        raise RuntimeError(
            f"sandbox: bwrap (bubblewrap) is not installed; install it (apt-get install "
            f"bubblewrap), or opt in to the weaker {BACKEND_ENV}=rlimit fallback as root"
        )
    _check_bwrap()
    return "bwrap"


@functools.cache
def _check_bwrap() -> None:
    """Fail loudly once if bwrap cannot build our sandbox here (instead of failing every test)."""
    seccomp = _seccomp_fd()
    try:
        with tempfile.TemporaryDirectory(prefix="dagrpo-sandbox-") as tmp:
            argv = _bwrap_argv(Path(tmp), SandboxLimits(), seccomp)
            argv += [str(_python()), "-I", "-S", "-c", "pass"]
            probe = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, pass_fds=[seccomp]
            )
    finally:
        os.close(seccomp)
    if probe.returncode != 0:
        detail = probe.stderr.strip()
        raise RuntimeError(f"sandbox: bwrap cannot start a sandbox here: {detail}")
