"""The per-run cgroup (collab/cgroup.py): discovery, limits and OOM reading on fake trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from collab import cgroup

PROC_CGROUP = "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/a1\n0::/\n"


def _fake_v1(root: Path) -> None:
    for d in (root / "memory/jobs/a1", root / "pids"):
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")


def test_v1_parents_follow_this_process_s_own_cgroups(tmp_path):
    _fake_v1(tmp_path)
    assert cgroup.v1_parents(PROC_CGROUP, tmp_path) == (tmp_path / "memory/jobs/a1", tmp_path / "pids")


def test_v1_parents_need_both_controllers(tmp_path):
    _fake_v1(tmp_path)
    assert cgroup.v1_parents("4:memory:/jobs/a1\n0::/\n", tmp_path) is None  # no pids line
    assert cgroup.v1_parents("0::/user.slice\n", tmp_path) is None  # pure cgroup v2
    assert cgroup.v1_parents(PROC_CGROUP, tmp_path / "elsewhere") is None  # not mounted there


def test_join_argv_enters_every_hierarchy_before_exec():
    run = cgroup.RunCgroup(1, (Path("/cg/memory/r"), Path("/cg/pids/r")))
    argv = run.join_argv(["bwrap", "--", "python"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == "sh"
    assert argv[4:] == ["/cg/memory/r/cgroup.procs", "/cg/pids/r/cgroup.procs", "--", "bwrap", "--", "python"]


@pytest.mark.parametrize(
    "version, name, text, killed",
    [
        (1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", False),
        (1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", True),
        (2, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", True),
        (2, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", False),
    ],
)
def test_oom_killed_reads_the_kernel_counter(tmp_path, version, name, text, killed):
    (tmp_path / name).write_text(text)
    assert cgroup.RunCgroup(version, (tmp_path,)).oom_killed() is killed


def test_delegated_v2_directory_gets_a_child_with_the_limits(tmp_path, monkeypatch):
    monkeypatch.setenv(cgroup.CGROUP_ENV, str(tmp_path))
    run = cgroup.create("run-1", 128 << 20, 24)
    assert run == cgroup.RunCgroup(2, (tmp_path / "run-1",))
    values = {f: (tmp_path / "run-1" / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max")}
    assert values == {"memory.max": "134217728\n", "memory.swap.max": "0\n", "pids.max": "24\n"}
