"""`dagrpo doctor`: the child-process probes, a simulated crash, the exit rule, llama.cpp log routing."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pytest

from dagrpo import doctor
from llama_runtime import probe
from dagrpo.errors import UserError

_CRASH = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"


def test_sigill_names_the_cause_and_the_rebuild():
    detail = probe.crash_detail(-signal.SIGILL, "", "llama.cpp")
    assert "SIGILL" in detail and "scripts/build-llama.sh" in detail and "AMX" in detail


def test_other_signal_and_exit_code_are_named():
    assert probe.crash_detail(-signal.SIGSEGV, "", "x") == "x died with SIGSEGV"
    assert probe.crash_detail(3, "warning\nValueError: bad file\n", "x") == "x failed (exit 3): ValueError: bad file"


def test_a_crashing_child_is_a_finding_not_the_end():
    ok, detail = probe.run_child(_CRASH)
    assert not ok and "SIGILL" in detail
    ok, detail = probe.run_child("print('fine')")
    assert ok and detail == "fine"


def test_require_llama_turns_a_crash_into_a_user_error(monkeypatch):
    monkeypatch.setattr(probe, "_LLAMA_PROBE", _CRASH)
    with pytest.raises(UserError, match="SIGILL.*build-llama.sh"):
        probe.require_llama("/nonexistent.gguf")


def test_memory_thresholds():
    assert doctor.memory_finding(1 * 2**30).status == "fail"
    assert doctor.memory_finding(3 * 2**30).status == "warn"
    assert doctor.memory_finding(16 * 2**30).status == "ok"


def test_exit_status_fails_only_on_required():
    ok = doctor.Finding("a", "ok", "", True)
    assert doctor.exit_status([ok, doctor.Finding("redis-server", "fail", "", False)]) == 0
    assert doctor.exit_status([ok, doctor.Finding("redis-server", "warn", "", True)]) == 0
    assert doctor.exit_status([ok, doctor.Finding("torch", "fail", "", True)]) == 1


def test_llama_log_lines_are_joined_and_leveled(caplog):
    from llama_runtime.llm import _LogRouter

    router = _LogRouter()
    with caplog.at_level(logging.DEBUG, logger="dagrpo.llama_cpp"):
        router(3, b"failed to ", None)
        router(5, b"load\n", None)  # CONT: same record, same level
        router(2, b"lora cannot use buft 'AMX'\n", None)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "failed to load"), (logging.INFO, "lora cannot use buft 'AMX'")]


@pytest.mark.integration
def test_doctor_on_this_machine_decodes_with_the_real_model():
    finding = doctor.check_llama(__import__("edge_agent.settings").settings.default_model_path())
    assert finding.status == "ok", finding.detail
    assert "decoded" in finding.detail and "AMX_INT8" not in finding.detail and "prefilled" in finding.detail


@pytest.mark.integration
def test_doctor_command_prints_the_table_and_passes_here():
    proc = subprocess.run([sys.executable, "-m", "dagrpo.cli", "doctor"], capture_output=True, text=True,
                          timeout=300)
    assert "llama.cpp decode" in proc.stdout and "model file" in proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
