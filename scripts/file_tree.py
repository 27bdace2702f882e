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


def purpose(path: Path) -> str:
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
        if line.startswith("#") and not line.startswith("#!") and path.suffix != ".md":
            return line.lstrip("# ")
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
        if name.endswith("__init__.py") and not purpose(root / name):
            continue
        lines.append(f"{name:<48} {purpose(root / name)}".rstrip())
    lines.append(f"{'collab/v1/':<48} generated gRPC stubs for proto/collab/v1 (make proto)")
    print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
