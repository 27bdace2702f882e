"""Print the repository's file tree with a one-line purpose per file (for the README).

The purpose is the first line of a Python module's docstring, the first comment line of a shell,
TOML, YAML or Dockerfile, or the first heading of a Markdown file. Usage:
    python scripts/file_tree.py > /tmp/tree.md
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SKIP_PREFIXES = ("collab/v1/",)  # generated stubs: described once by their folder
SKIP_SUFFIXES = (".pyi", ".png", ".gz", ".parquet")


# Files that cannot carry a comment (JSON, data) or whose comment syntax differs.
KNOWN = {
    ".gitignore": "files git ignores (the venv, caches, run directories)",
    "deploy/grafana/dashboards/dagrpo.json": "the Grafana dashboard (metric names the services export)",
    "tests/fleet/fixtures/help-run/adapter/adapter_config.json": "help-seeking LoRA test fixture (peft config)",
    "tests/fleet/fixtures/help-run/adapter/adapter_model.safetensors": "help-seeking LoRA test fixture (weights)",
    "tests/fleet/fixtures/help-run/state.json": "help-seeking LoRA test fixture (run state)",
}
COMMENT_PREFIXES = ("#", "--", "//")


def purpose(path: Path, name: str = "") -> str:
    if name in KNOWN:
        return KNOWN[name]
    if name.startswith("tests/fixtures/datasets/"):
        return "hand-written fixture rows in this dataset's real schema"
    text = path.read_text(errors="replace")
    if path.suffix == ".py":
        try:
            doc = ast.get_docstring(ast.parse(text))
        except SyntaxError:
            doc = None
        return doc.strip().splitlines()[0] if doc else ""
    for line in text.splitlines():
        line = line.strip()
        if path.suffix == ".md" and line.startswith("#"):
            return line.lstrip("# ")
        if line.startswith(COMMENT_PREFIXES) and not line.startswith("#!") and path.suffix != ".md":
            return line.lstrip("#-/ ")
    return ""


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True)
    return sorted(out.stdout.split())


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    lines = []
    for name in tracked_files(root):
        if name.startswith(SKIP_PREFIXES) or name.endswith(SKIP_SUFFIXES):
            continue
        if name.endswith("__init__.py") and not purpose(root / name, name):
            continue
        lines.append(f"{name:<48} {purpose(root / name, name)}".rstrip())
    lines.append(f"{'collab/v1/':<48} generated gRPC stubs for proto/collab/v1 (make proto)")
    print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
