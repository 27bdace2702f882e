"""The committed stubs in collab/v1 are exactly what scripts/gen-proto.sh makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GENERATED = ("gateway_pb2.py", "gateway_pb2_grpc.py", "gateway_pb2.pyi", "__init__.py")


def test_stubs_match_the_proto(repo_root: Path, tmp_path: Path):
    subprocess.run(["bash", "scripts/gen-proto.sh", str(tmp_path)], cwd=repo_root, check=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    protos = sorted(p.stem for p in (repo_root / "proto/collab/v1").glob("*.proto"))
    assert protos == ["gateway"]
    for name in GENERATED:
        fresh = (tmp_path / "collab/v1" / name).read_text()
        committed = (repo_root / "collab/v1" / name).read_text()
        assert fresh == committed, f"collab/v1/{name} drifted from proto/: run `make proto` and commit"


def test_stubs_import_under_collab_v1():
    from collab.v1 import gateway_pb2

    assert gateway_pb2.DESCRIPTOR.package == "collab.v1"
    assert set(gateway_pb2.DESCRIPTOR.services_by_name) == {"CloudGateway", "GatewayAdmin"}
