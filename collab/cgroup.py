"""One cgroup per sandbox run: memory and process count of the whole run, together.

RLIMIT_AS and RLIMIT_NPROC are per process and per uid, so `processes` programs each just under
`memory_mb` would hold `processes * memory_mb`; tmpfs pages are in no process's address space at
all. A cgroup charges every page of the run (tmpfs included) to one limit and kills inside it
when the limit is hit (the OOM killer of that cgroup only).

Where the cgroup comes from, in this order:

1. `DAGRPO_SANDBOX_CGROUP=/sys/fs/cgroup/<dir>`: a cgroup v2 directory delegated to us, with
   `memory` and `pids` in its `cgroup.subtree_control` (systemd: a unit with `Delegate=yes`;
   by hand: `mkdir`, `echo +memory +pids > cgroup.subtree_control` in its parent). Each run is a
   child with `memory.max`, `memory.swap.max = 0`, `pids.max`.
2. cgroup v1 `memory` and `pids` hierarchies where this process's own cgroups are writable
   (root in a VM or a privileged container): a child in each, with `memory.limit_in_bytes`,
   `memory.memsw.limit_in_bytes` where swap accounting exists, and `pids.max`.
3. Neither: None, and the sandbox says so once (a run is then bounded per process only).

A v2 cgroup cannot be created next to this process's own (the "no internal processes" rule),
hence the explicit directory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ENV = "DAGRPO_SANDBOX_CGROUP"
_V1_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class RunCgroup:
    version: int  # 1 or 2
    dirs: tuple[Path, ...]  # v2: one directory; v1: the run's memory and pids directories

    def join_argv(self, argv: list[str]) -> list[str]:
        """`argv` behind a shell that moves itself into the cgroup first (so no child escapes)."""
        script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", script, "sh", *procs, "--", *argv]

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process of the run."""
        events = self.dirs[0] / ("memory.events" if self.version == 2 else "memory.oom_control")
        fields = dict(line.split() for line in events.read_text().splitlines() if line.strip())
        return int(fields.get("oom_kill", "0")) > 0

    def remove(self) -> None:
        """Remove the cgroup once the run's processes (killed by the caller) have left it."""
        for d in self.dirs:
            for _ in range(200):
                try:
                    d.rmdir()
                    break
                except OSError:  # EBUSY while the last killed process is still leaving
                    time.sleep(0.005)
            else:
                raise RuntimeError(f"sandbox: cgroup {d} still holds processes after the run")


def available() -> bool:
    return bool(os.environ.get(CGROUP_ENV)) or v1_parents() is not None


def create(name: str, memory_bytes: int, pids: int) -> RunCgroup | None:
    """A fresh cgroup `name` with these limits, or None where this machine gives us none."""
    delegated = os.environ.get(CGROUP_ENV)
    if delegated:
        run = Path(delegated) / name
        run.mkdir()
        _write(run / "memory.max", memory_bytes)
        _write(run / "memory.swap.max", 0)
        _write(run / "pids.max", pids)
        return RunCgroup(2, (run,))
    parents = v1_parents()
    if parents is None:
        return None
    memory, pids_dir = (parent / name for parent in parents)
    memory.mkdir()
    pids_dir.mkdir()
    _write(memory / "memory.limit_in_bytes", memory_bytes)
    if (memory / "memory.memsw.limit_in_bytes").exists():
        _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)  # no swapping around it
    _write(pids_dir / "pids.max", pids)
    return RunCgroup(1, (memory, pids_dir))


def v1_parents(proc_cgroup: str | None = None, root: Path = _V1_ROOT) -> tuple[Path, Path] | None:
    """This process's writable v1 (memory, pids) cgroup directories, or None."""
    if proc_cgroup is None:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    own = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    found = []
    for controller in ("memory", "pids"):
        if controller not in own:
            return None
        parent = root / controller / own[controller].lstrip("/")
        if not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
            return None
        found.append(parent)
    return found[0], found[1]


def _write(path: Path, value: int) -> None:
    path.write_text(f"{value}\n")
