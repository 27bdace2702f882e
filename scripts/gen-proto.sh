#!/usr/bin/env bash
# Regenerate the committed gRPC stubs (package collab.v1) from proto/collab/v1/*.proto.
# Usage: bash scripts/gen-proto.sh [OUT_DIR]   (default: the repository root)
# tests/cloud_gateway/test_proto_stubs.py runs this into a temp dir and compares with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$out/collab/v1"
"$PY" -m grpc_tools.protoc -Iproto --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" proto/collab/v1/*.proto
[ -f "$out/collab/v1/__init__.py" ] || printf '"""Generated gRPC stubs of proto/collab/v1 (do not edit; run scripts/gen-proto.sh)."""\n' > "$out/collab/v1/__init__.py"
