"""`dagrpo --help` lists every subcommand whose module exists, and never imports a heavy runtime."""

from __future__ import annotations

import json
import subprocess
import sys

from dagrpo.cli import COMMAND_MODULES

HEAVY = ("torch", "transformers", "peft", "llama_cpp")

# Runs the real entry point in a fresh interpreter, then reports what got imported.
PROBE = """
import json, sys
from dagrpo.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
print("@@MODULES@@" + json.dumps(sorted(sys.modules)))
"""


def _run_help() -> tuple[str, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    text, _, modules = out.partition("@@MODULES@@")
    return text, set(json.loads(modules))


def test_help_lists_existing_subcommands_without_heavy_imports(repo_root):
    text, modules = _run_help()
    present = [name for name, module in COMMAND_MODULES.items()
               if (repo_root / (module.replace(".", "/") + ".py")).exists()]
    assert {"tasks", "grade"} <= set(present)
    for name in present:
        assert f"    {name}" in text, f"`dagrpo --help` does not list {name!r}"
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"`dagrpo --help` imported heavy runtimes: {heavy[:5]}"


def test_console_script_help_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "dagrpo.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: dagrpo")
