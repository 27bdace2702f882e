#!/usr/bin/env bash
# Build llama-cpp-python once per (version, build flags) into a project-local wheelhouse and install
# that wheel. pip's own wheel cache keys a wheel built from an sdist on the sdist's link, not on
# CMAKE_ARGS: a machine that once built a native (-march=native, AMX) wheel would keep installing it.
# Here the flags are part of the wheelhouse path, the build never reads pip's cache, and the
# install only looks in that folder.
#
#   PY=.venv/bin/python LLAMA_CMAKE_ARGS="..." bash scripts/build-llama.sh [--print-house]
#
# Default (portable x86-64): no -march=native; AVX/AVX2/FMA/F16C, no AVX-512, no AMX; no multimodal
# library. Any x86-64 CPU since Haswell (2013) runs it. Faster native build for your own machine:
#   make install LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
default_args() {
  case "$(uname -m)" in
    x86_64|amd64)
      echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF" ;;
    *)  # aarch64 (Jetson, Graviton, Apple silicon under Linux): llama.cpp's generic ARM build
      echo "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" ;;
  esac
}
ARGS="${LLAMA_CMAKE_ARGS:-$(default_args)}"
key="$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$ARGS" "$("$PY" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-16)"
house=".wheelhouse/llama-cpp-python/$key"
if [ "${1:-}" = "--print-house" ]; then echo "$house"; exit 0; fi
if ! ls "$house"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_VERSION (a few minutes) with CMAKE_ARGS=$ARGS"
  mkdir -p "$house.tmp"
  CMAKE_ARGS="$ARGS" FORCE_CMAKE=1 "$PY" -m pip wheel -q --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$house.tmp" "llama-cpp-python==$LLAMA_CPP_VERSION"
  printf '%s\n' "$ARGS" > "$house.tmp/CMAKE_ARGS"
  rm -rf "$house" && mv "$house.tmp" "$house"
fi
# --force-reinstall --no-deps: replace whatever llama-cpp-python is installed (a native wheel from
# pip's cache included) by the one built with these flags.
"$PY" -m pip install -q --no-cache-dir --no-index --no-deps --force-reinstall \
  --find-links "$house" "llama-cpp-python==$LLAMA_CPP_VERSION"
echo "llama-cpp-python $LLAMA_CPP_VERSION from $house ($ARGS)"
