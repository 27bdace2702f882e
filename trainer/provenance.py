"""Where a run came from: the code (git commit), the packages, and the machine -> RUN_DIR/provenance.json.

Written once by `trainer.context.setup` for a new run (a resumed run keeps the record of its start), beside
the resolved config.toml. A field that cannot be known (no git checkout, a package not installed,
no /proc) is recorded as null, not guessed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "llama-cpp-python", "numpy")
REPO = Path(__file__).resolve().parent.parent


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The first `model name` of /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return None


def parse_mem_total_gib(meminfo: str) -> float | None:
    """`MemTotal` of /proc/meminfo text (kB) in GiB, 2 decimals."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 2)
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def git_state(repo: Path = REPO) -> dict:
    """{"commit": sha or None, "dirty": bool or None} of the checkout the code runs from."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    return {
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": parse_cpu_model(_read("/proc/cpuinfo")) or platform.processor() or None,
        "memory_gib": parse_mem_total_gib(_read("/proc/meminfo")),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # a shared machine's timings need it
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def provenance() -> dict:
    return {"git": git_state(), "packages": package_versions(), "machine": machine()}


def write_provenance(out: Path) -> dict:
    from trainer.checkpoint import atomic_write_text

    record = provenance()
    atomic_write_text(out / "provenance.json", json.dumps(record, indent=1) + "\n")
    return record
