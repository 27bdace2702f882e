"""The package-level import graph, read from the source (AST, no imports run): each runtime stays in its lane.

trainer and edge_agent never import each other, and neither imports cloud_gateway: devices depend
on the contract (collab/, incl. collab/gateway_client.py) and on the shared llama.cpp runtime
(llama_runtime/), which imports neither. `dagrpo edge train` (dagrpo/edge_train.py) is the one
module above both; the edge CLI reaches it lazily, which is the one edge that crosses the lanes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = ("dagrpo", "collab", "llama_runtime", "trainer", "edge_agent", "cloud_gateway")
FORBIDDEN = {
    "collab": {"trainer", "edge_agent", "cloud_gateway", "llama_runtime"},
    "llama_runtime": {"trainer", "edge_agent", "cloud_gateway"},
    "trainer": {"edge_agent", "cloud_gateway"},
    "edge_agent": {"trainer", "cloud_gateway"},
    "cloud_gateway": {"trainer", "edge_agent", "llama_runtime"},
}
ORCHESTRATION = "dagrpo.edge_train"
ALLOWED = {("edge_agent/cli.py", ORCHESTRATION)}  # `dagrpo edge train` runs the orchestration command


def imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def edges(repo_root: Path) -> list[tuple[str, str]]:
    return [(str(f.relative_to(repo_root)), m) for pkg in PACKAGES for f in sorted((repo_root / pkg).rglob("*.py"))
            if "__pycache__" not in f.parts for m in imports(f)]


def test_imports_follows_every_import_form(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import a.b\nfrom c import d\nfrom . import e\ndef f():\n    from g.h import i\n")
    assert imports(f) == {"a.b", "c", "g.h"}


def test_no_runtime_imports_another_runtime(repo_root):
    bad = [(src, mod) for src, mod in edges(repo_root)
           if mod.split(".")[0] in FORBIDDEN.get(src.split("/")[0], set())]
    assert not bad, f"imports against the architecture: {bad}"


def test_only_the_edge_cli_reaches_the_orchestration_command(repo_root):
    bad = [(src, mod) for src, mod in edges(repo_root) if mod == ORCHESTRATION and (src, mod) not in ALLOWED]
    assert not bad, bad
    light = [(src, mod) for src, mod in edges(repo_root) if src.split("/")[0] != "dagrpo"
             and mod.split(".")[0] == "dagrpo" and mod not in ("dagrpo.errors", ORCHESTRATION)]
    assert not light, f"packages may import only dagrpo.errors from the top-level package: {light}"


@pytest.mark.parametrize("heavy, home", [("llama_cpp", "llama_runtime/llm.py"), ("redis", "cloud_gateway/store/redis_store.py")])
def test_one_file_imports_each_heavy_runtime(repo_root, heavy, home):
    users = sorted({src for src, mod in edges(repo_root) if mod.split(".")[0] == heavy})
    assert users == [home]
