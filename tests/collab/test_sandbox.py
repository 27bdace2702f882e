"""The code sandbox: hostile programs fail within the limits and leave the host untouched.

Everything except the pure checks at the top runs the real sandbox (bwrap where installed).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from pathlib import Path

import pytest

from collab import cgroup, sandbox
from collab.sandbox import SandboxLimits, run_code_tests, run_stdio_tests

FAST = SandboxLimits(cpu_s=1, wall_s=5, memory_mb=256, processes=16, output_bytes=4096)


def _uids_alive(uid: int) -> list[int]:
    """Live (non-zombie) host pids with real uid `uid`, after giving SIGKILL up to 1 s to land.

    A sandbox's fresh uid is used by nobody else.
    """
    deadline = time.monotonic() + 1
    while (pids := _pids_of(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines())
        if fields["Uid"].split()[0] == str(uid) and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry.name))
    return pids


# --- pure pieces -------------------------------------------------------------------------------


def test_limits_refuse_non_positive_values():
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)


def test_normalize_strips_trailing_whitespace_per_line_and_trailing_blank_lines():
    assert sandbox._normalize("1  \n2\t\n\n\n") == "1\n2"
    assert sandbox._normalize(" 1\n2") != sandbox._normalize("1\n2")  # leading space matters


@pytest.mark.parametrize("choice", ["docker", "auto"])
def test_unknown_backend_is_refused(monkeypatch, choice):
    monkeypatch.setenv(sandbox.BACKEND_ENV, choice)
    with pytest.raises(ValueError, match=sandbox.BACKEND_ENV):
        run_code_tests("x = 1", "")


# --- the real sandbox --------------------------------------------------------------------------

integration = pytest.mark.integration


@integration
def test_bwrap_is_the_backend_here():
    assert sandbox._backend() == "bwrap"  # the hostile tests below must exercise bwrap


@integration
def test_correct_program_passes_and_wrong_one_fails():
    program = "def add(a, b):\n    return a + b\n"
    assert run_code_tests(program, "assert add(2, 3) == 5").passed
    wrong = run_code_tests(program, "assert add(2, 3) == 6")
    assert not wrong.passed and wrong.reason == "test failed: AssertionError"
    assert 'File "tests.py", line 1' in wrong.stderr  # the failing test's traceback


@integration
def test_check_is_called_with_the_entry_point():
    tests = "def check(candidate):\n    assert candidate(4) == 16\n"
    assert run_code_tests("def sq(x):\n    return x * x\n", tests, entry_point="sq").passed
    failed = run_code_tests("def sq(x):\n    return x + x + 1\n", tests, entry_point="sq")
    assert not failed.passed and "AssertionError" in failed.stderr


@integration
@pytest.mark.parametrize("escape", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()"])
def test_exiting_before_the_tests_run_fails(escape):
    result = run_code_tests(escape, "assert False")
    assert result.returncode == 0 and not result.passed
    assert result.reason == "exited before the tests finished"


@integration
def test_program_stdout_is_returned_as_printed():
    result = run_code_tests("print('hello')", "")
    assert result.passed and result.stdout == "hello\n"


@integration
def test_program_that_replaces_sys_stdout_still_passes():
    program = "import io, sys\nsys.stdout = io.StringIO()\nprint('swallowed')\n"
    assert run_code_tests(program, "assert True").passed


@integration
def test_host_is_invisible_and_the_program_is_unprivileged(tmp_path):
    probe = f"""
import os
for path in ("/work", "/home", "/root/.ssh", "/etc/passwd", {str(tmp_path)!r}):
    print(path, os.path.exists(path))
status = open("/proc/self/status").read()
print("uid", os.getuid(), "cap", status.split("CapEff:")[1].split()[0])
print("cwd", os.getcwd(), os.listdir("."))
open("scratch.txt", "w").write("private tmpfs is writable")
"""
    result = run_code_tests(probe, "", limits=FAST)
    assert result.passed, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.endswith("False") for line in lines[:5]), lines
    _, uid, _, cap = lines[5].split()
    assert int(uid) >= 1 << 30 and int(cap, 16) == 0
    assert lines[6] == "cwd /tmp []"


@integration
def test_infinite_loop_is_stopped_by_the_cpu_limit():
    result = run_code_tests("while True:\n    pass\n", "", limits=FAST)
    assert not result.passed and result.reason == "cpu time limit"
    assert result.duration_s < FAST.wall_s


@integration
def test_sleeping_program_is_stopped_by_the_wall_limit():
    limits = SandboxLimits(wall_s=1)
    program = "import os, time\nprint(os.getuid(), flush=True)\ntime.sleep(60)\n"
    result = run_code_tests(program, "", limits=limits)
    assert not result.passed and result.timed_out and result.reason == "wall time limit"
    assert result.duration_s < 3
    assert _uids_alive(int(result.stdout.split()[0])) == []


@integration
def test_memory_bomb_hits_the_memory_limit():
    bomb = "hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))\n"
    result = run_code_tests(bomb, "", limits=FAST)
    assert not result.passed and result.reason == "memory limit"
    assert result.duration_s < FAST.wall_s


FORK_BOMB = """
import os, time
print(os.getuid(), flush=True)
forks = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forks += 1
except OSError:
    print("forks", forks, flush=True)
    raise SystemExit(3)
"""


@integration
def test_fork_bomb_is_contained_by_the_process_limit():
    result = run_code_tests(FORK_BOMB, "", limits=FAST)
    assert not result.passed and not result.timed_out
    uid_line, forks_line = result.stdout.splitlines()
    assert forks_line == f"forks {FAST.processes - 1}"  # the limit, not memory, stopped it
    assert _uids_alive(int(uid_line)) == []  # the sleeping children died with the sandbox


@integration
def test_classic_fork_bomb_ends_within_the_limits():
    bomb = "import os\nprint(os.getuid(), flush=True)\nwhile True:\n    os.fork()\n"
    result = run_code_tests(bomb, "", limits=FAST)
    assert not result.passed and not result.timed_out
    assert _uids_alive(int(result.stdout.split()[0])) == []


@integration
def test_network_connect_to_a_host_loopback_port_fails():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        result = run_code_tests(program, "", limits=FAST)
        readable, _, _ = select.select([server], [], [], 0.2)
    assert not result.passed
    assert "ConnectionRefusedError" in result.stderr or "unreachable" in result.stderr
    assert readable == []  # no connection ever reached the listening socket


@integration
def test_writing_a_host_file_fails_and_leaves_it_unchanged(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("original")
    program = f"open({str(target)!r}, 'w').write('overwritten')\n"
    result = run_code_tests(program, "", limits=FAST)
    assert not result.passed and "FileNotFoundError" in result.stderr
    assert target.read_text() == "original"


@integration
def test_system_directories_are_read_only():
    result = run_code_tests("open('/usr/lib/evil.py', 'w').write('x')\n", "", limits=FAST)
    assert not result.passed and ("Read-only" in result.stderr or "Permission" in result.stderr)
    assert not Path("/usr/lib/evil.py").exists()


@integration
def test_huge_output_is_cut_at_the_output_limit():
    result = run_code_tests("while True:\n    print('x' * 1000)\n", "", limits=FAST)
    assert not result.passed and result.reason == "output limit"
    assert len(result.stdout) <= FAST.output_bytes
    assert result.duration_s < FAST.wall_s


@integration
def test_stdio_cases_pass_with_trailing_whitespace_and_fail_with_the_case_index():
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    assert run_stdio_tests(program, [("1 2\n", "3\n"), ("5 5", "10  \n\n")]).passed
    result = run_stdio_tests(program, [("1 2\n", "3"), ("2 2\n", "5")])
    assert not result.passed and result.reason == "case 1: wrong output" and result.stdout == "4\n"
    with pytest.raises(ValueError):
        run_stdio_tests(program, [])


@integration
def test_stdio_program_may_call_exit_after_printing():
    assert run_stdio_tests("print(input()[::-1])\nexit(0)\n", [("abc\n", "cba\n")]).passed


@integration
def test_rlimit_fallback_warns_every_run_and_still_enforces_limits(monkeypatch, caplog):
    if os.getuid() != 0:
        pytest.skip("the rlimit fallback needs root (uid drop)")
    monkeypatch.setenv(sandbox.BACKEND_ENV, "rlimit")
    with caplog.at_level(logging.WARNING, logger="collab.sandbox"):
        assert run_code_tests("def f():\n    return 1\n", "assert f() == 1", limits=FAST).passed
        looping = run_code_tests("while True:\n    pass\n", "", limits=FAST)
        bombed = run_code_tests(FORK_BOMB, "", limits=SandboxLimits(wall_s=1, processes=16))
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 3
    assert "WITHOUT bubblewrap" in caplog.text
    assert looping.reason == "cpu time limit"
    uid_line, forks_line = bombed.stdout.splitlines()
    assert int(uid_line) >= 1 << 30  # the uid drop works without bwrap too
    assert forks_line == "forks 15"
    assert _uids_alive(int(uid_line)) == []  # the parent killed every process of the uid


# --- exploits of issue 22: each passed (or escaped) before the fix -----------------------------

FORGERIES = {
    # The old driver read a run token from a seekable stdin file and printed it after the tests.
    "seek back over stdin": (
        "import os\nos.lseek(0, 0, 0)\nt = os.read(0, 99).split()[0]\n"
        "os.write(1, b'\\n' + t + b'\\n')\nos._exit(0)\n"
    ),
    "read the driver's locals": (
        "import os, sys\nos.write(1, ('\\n' + sys._getframe(1).f_locals['token'] + '\\n').encode())\n"
        "os._exit(0)\n"
    ),
    # Protocol lines written to every fd the program might share with the judge.
    "write fake replies to every fd": (
        "import os\nfor fd in range(1, 64):\n    try:\n"
        "        os.write(fd, b'[\"ready\", []]\\n[\"ok\", null]\\n\\n' + b'0' * 32 + b'\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)\n"
    ),
}


@integration
@pytest.mark.parametrize("program", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_program_cannot_forge_a_pass_of_failing_tests(program):
    assert not run_code_tests(program, "assert False", limits=FAST).passed


ALWAYS_EQUAL = """
class Same:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
class Five(int):
    def __eq__(self, other):
        return True
def f(x):
    return Same()
def g(x):
    return Five(5)
"""


@integration
@pytest.mark.parametrize("call", ["f", "g"])
def test_a_value_with_a_forged_eq_fails_equality_tests(call):
    assert not run_code_tests(ALWAYS_EQUAL, f"assert {call}(1) == [2], 'wrong'", limits=FAST).passed
    humaneval_style = f"def check(candidate):\n    assert candidate(1) == 7\n"
    assert not run_code_tests(ALWAYS_EQUAL, humaneval_style, call, limits=FAST).passed


@integration
def test_top_level_functions_named_like_builtins_do_not_shadow_them_in_the_tests():
    program = "def abs(x):\n    return 0\ndef all(xs):\n    return True\n"
    program += "def f(x):\n    return 100.0\n"
    assert not run_code_tests(program, "assert abs(f(1) - 2.0) < 1e-6", limits=FAST).passed
    assert not run_code_tests(program, "assert all([f(1) == 2.0])", limits=FAST).passed
    entry = "def check(candidate):\n    assert candidate([1, 2]) == 3\n"
    assert run_code_tests("def sum(xs):\n    return 3\n", entry, "sum", limits=FAST).passed


@integration
def test_stop_iteration_from_the_program_cannot_end_a_test_loop_early():
    program = "def f(x):\n    raise StopIteration\n"
    result = run_code_tests(program, "assert all(map(f, [1, 2]))", limits=FAST)
    assert not result.passed and result.reason == "test failed: RuntimeError"


@integration
def test_patched_builtins_do_not_reach_the_tests():
    program = "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 3\n"
    program += "def f(x):\n    return 100.0\n"
    tests = "assert abs(f(1) - 2.0) < 1e-6\nassert len([f(1)]) == 3\n"
    assert not run_code_tests(program, tests, limits=FAST).passed


@integration
def test_stdio_expected_output_never_enters_the_sandbox():
    marker = "e3b0c44298fc1c149afbf4c8996fb924"
    program = """
import os, sys
seen = [sys.stdin.read(), repr(dict(os.environ)), repr(sys.argv)]
for root in ("/box", "/tmp", "/proc/self/fd"):
    try:
        names = os.listdir(root)
    except OSError:
        names = []
    for name in names:
        try:
            seen.append(open(os.path.join(root, name), errors="replace").read())
        except OSError:
            pass
for pid in os.listdir("/proc"):
    for part in ("cmdline", "environ"):
        try:
            seen.append(open(f"/proc/{pid}/{part}", "rb").read().decode(errors="replace"))
        except OSError:
            pass
print("\\n".join(seen))
"""
    result = run_stdio_tests(program, [("in\n", marker)], limits=SandboxLimits(output_bytes=1 << 22))
    assert not result.passed and result.reason == "case 0: wrong output"
    assert marker not in result.stdout


UNSHARE_TMPFS = """
import subprocess
script = "mount -t tmpfs none /tmp && head -c 200000000 /dev/zero > /tmp/x && echo wrote"
r = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True)
print(r.stdout, r.stderr)
"""


@integration
def test_no_new_user_namespace_or_mount_inside_the_sandbox():
    result = run_code_tests(UNSHARE_TMPFS, "", limits=SandboxLimits(memory_mb=128))
    assert "wrote" not in result.stdout, result.stdout
    probe = "import ctypes\nprint(ctypes.CDLL(None, use_errno=True).unshare(0x10000000))\n"
    assert run_code_tests(probe, "", limits=FAST).stdout == "-1\n"  # CLONE_NEWUSER refused


@integration
@pytest.mark.parametrize("path", ["/dev/shm/x", "/dev/x", "/tmp/x"])
def test_every_writable_tmpfs_is_capped(path):
    program = f"f = open({path!r}, 'wb')\nfor _ in range(64):\n    f.write(bytes(8 << 20))\n"
    program += "f.close()\nprint('wrote')\n"
    result = run_code_tests(program, "", limits=SandboxLimits(memory_mb=128))
    assert "wrote" not in result.stdout and not result.passed


@integration
def test_file_size_and_open_file_limits():
    big = "open('big', 'wb').write(bytes(300 << 20))\n"
    assert not run_code_tests(big, "", limits=FAST).passed
    many = "fds = [open('/dev/null') for _ in range(5000)]\n"
    result = run_code_tests(many, "", limits=FAST)
    assert not result.passed and "Too many open files" in result.stderr


def test_without_bwrap_the_sandbox_refuses_to_run(monkeypatch, tmp_path):
    monkeypatch.delenv(sandbox.BACKEND_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(RuntimeError, match="bwrap"):
        run_code_tests("x = 1", "")


SETSID_ESCAPE = """
import os, time
print(os.getuid(), flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.5)
        open({path!r}, "w").write("escaped")
    os._exit(0)
"""


@integration
def test_rlimit_fallback_kills_a_setsid_grandchild_and_warns_every_run(
    monkeypatch, caplog, tmp_path
):
    if os.getuid() != 0:
        pytest.skip("the rlimit fallback needs root (uid drop)")
    monkeypatch.setenv(sandbox.BACKEND_ENV, "rlimit")
    tmp_path.chmod(0o777)
    target = tmp_path / "escaped.txt"
    with caplog.at_level(logging.WARNING, logger="collab.sandbox"):
        result = run_code_tests(SETSID_ESCAPE.format(path=str(target)), "", limits=FAST)
        run_code_tests("x = 1", "", limits=FAST)
    assert result.passed, result.stderr
    assert _uids_alive(int(result.stdout.split()[0])) == []
    time.sleep(2)
    assert not target.exists()
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]


# --- the call protocol ---------------------------------------------------------------------------


@integration
def test_objects_that_are_not_data_stay_in_the_sandbox_and_their_methods_run_there():
    program = "class Solution:\n    def twice(self, x):\n        return [x, x]\n"
    tests = "fn = getattr(Solution(), 'twice')\nassert fn(3) == [3, 3]\n"
    assert run_code_tests(program, tests, limits=FAST).passed
    leak = "s = Solution()\nassert s == s and s != Solution() and repr(s).startswith('<sandboxed')\n"
    assert run_code_tests(program, leak, limits=FAST).passed


@integration
def test_a_builtin_exception_raised_by_the_program_is_raised_in_the_tests():
    program = "def f(x):\n    raise ValueError(f'bad {x}')\n"
    tests = "try:\n    f(1)\nexcept ValueError as e:\n    assert str(e) == 'bad 1'\nelse:\n    assert False\n"
    assert run_code_tests(program, tests, limits=FAST).passed
    custom = "class Oops(Exception):\n    pass\ndef f():\n    raise Oops('x')\n"
    result = run_code_tests(custom, "f()", limits=FAST)
    assert result.reason == "test failed: RuntimeError" and "Oops: x" in result.stderr


@integration
def test_large_arguments_and_output_during_calls_do_not_deadlock():
    program = "def f(xs):\n    print('y' * 200_000)\n    return len(xs)\n"
    tests = "for _ in range(3):\n    assert f(list(range(100_000))) == 100_000\n"
    result = run_code_tests(program, tests, limits=SandboxLimits(output_bytes=1 << 21))
    assert result.passed, result.reason
    assert len(result.stdout) == 3 * 200_001


@integration
def test_a_program_that_dies_under_tests_that_swallow_errors_fails():
    program = "import os\ndef f():\n    os._exit(0)\n"
    tests = "try:\n    f()\nexcept Exception:\n    pass\n"
    result = run_code_tests(program, tests, limits=FAST)
    assert not result.passed and result.reason == "exited before the tests finished"


@integration
def test_a_call_that_sleeps_hits_the_wall_limit():
    program = "import time\ndef f():\n    time.sleep(60)\n"
    result = run_code_tests(program, "f()", limits=SandboxLimits(wall_s=1))
    assert result.reason == "wall time limit" and result.timed_out and result.duration_s < 3


@integration
def test_a_call_that_loops_hits_the_cpu_limit_and_a_memory_bomb_the_memory_limit():
    looping = run_code_tests("def f():\n    while True:\n        pass\n", "f()", limits=FAST)
    assert looping.reason == "cpu time limit"
    bomb = "def f():\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**7))\n"
    assert run_code_tests(bomb, "f()", limits=FAST).reason == "memory limit"


HOARDERS = """
import os, time
held = []
for _ in range({children}):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        hoard = b"x" * (80 << 20)  # under RLIMIT_AS (128 MB) in each process
        os.write(w, b"1")
        time.sleep(10)
        os._exit(0)
    os.close(w)
    if os.read(r, 1) == b"1":
        held.append(pid)
time.sleep(0.3)
alive = [pid for pid in held if os.waitpid(pid, os.WNOHANG) == (0, 0)]
print("together", len(alive), flush=True)
"""


@integration
def test_processes_of_one_run_share_one_memory_limit():
    if not cgroup.available():
        pytest.skip("no cgroup on this machine: memory is bounded per process only")
    limits = SandboxLimits(memory_mb=128, processes=16, wall_s=10)
    one = run_code_tests(HOARDERS.format(children=1), "", limits=limits)
    assert one.stdout == "together 1\n", one.stderr  # the hoarder itself works
    six = run_code_tests(HOARDERS.format(children=6), "", limits=limits)
    together = int(six.stdout.split()[-1]) if six.stdout.startswith("together") else 0
    assert together * 80 <= 128, six.stdout  # never more than the run's memory at once


@integration
def test_each_run_is_in_its_own_cgroup_here():
    if not cgroup.available():
        pytest.skip("no cgroup on this machine")
    result = run_code_tests("print(open('/proc/self/cgroup').read())", "", limits=FAST)
    assert "dagrpo-sandbox-" in result.stdout
    parents = cgroup.v1_parents() or (Path(os.environ.get(cgroup.CGROUP_ENV, "/nonexistent")),)
    assert not [p for d in parents for p in d.glob("dagrpo-sandbox-*")]  # removed after the run


@integration
def test_a_setsid_grandchild_dies_with_the_bwrap_sandbox():
    result = run_code_tests(SETSID_ESCAPE.format(path="/tmp/escaped"), "", limits=FAST)
    assert result.passed, result.stderr
    assert _uids_alive(int(result.stdout.split()[0])) == []
