"""`dagrpo fleet` argument checking, and the process-group teardown it relies on."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagrpo.cli import main


@pytest.mark.parametrize("args, field", [
    (["--devices", "0"], "devices"),
    (["--tasks", "math,nope"], "tasks"),
    (["--mode", "strict"], "mode"),
    (["--tau", "1.5"], "tau"),
    (["--duration", "0"], "duration_s"),
])
def test_bad_settings_fail_before_anything_starts_naming_the_field(args, field, capsys, tmp_path):
    assert main(["fleet", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert f"fleet setting '{field}'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, says", [
    (["--tau-at", "60"], "--tau-at: expected 'SECONDS:TAU'"),
    (["--tau-at", "60:2"], "--tau-at: TAU must lie in [0, 1]"),
    (["--tau-at", "10:code=0.1"], "names task 'code', not one of the fleet's tasks"),
    (["--duration", "30", "--tau-at", "30:0.1"], "comes after the load ends (30 s)"),
    (["--help-bias-file", "nowhere.json", "--help-knob"], "help bias file 'nowhere.json' does not exist"),
])
def test_bad_tau_changes_fail_before_anything_starts(args, says, capsys, tmp_path):
    assert main(["fleet", "--out", str(tmp_path / "run"), *args]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tau_at_and_the_knob_reach_the_config_and_the_agents_env(tmp_path):
    import argparse

    from deploy.fleet import knob_env
    from deploy.fleet_cli import _config, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    bias = tmp_path / "help_bias.json"
    bias.write_text("{}")
    args = parser.parse_args(["fleet", "--tau-at", "60:0.1", "--tau-at", "90:math=0.5", "--help-knob",
                              "--help-bias-file", str(bias), "--tau", "0.3", "--duration", "120"])
    cfg = _config(args)
    assert cfg.timeline() == {"math": [(0, 0.3), (60, 0.1), (90, 0.5)], "science": [(0, 0.3), (60, 0.1)]}
    assert knob_env(cfg) == {"EDGE_HELP_KNOB": "1", "EDGE_KNOB_DEFAULT_TAU": "0.3",
                             "EDGE_HELP_BIAS_FILE": str(bias.resolve())}
    assert knob_env(_config(parser.parse_args(["fleet"]))) == {}


def test_help_names_the_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["fleet", "--help"])
    out = capsys.readouterr().out
    assert "--devices" in out and "summary.json" in out and "--redis-url" in out


def test_stop_children_ends_whole_process_groups(tmp_path):
    from deploy.fleet import Child, stop_children

    # a child that ignores SIGTERM and has a grandchild: both must be gone afterwards
    script = "trap '' TERM; sleep 300 & echo $! > grandchild; wait"
    proc = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, start_new_session=True)
    for _ in range(100):
        if (tmp_path / "grandchild").exists() and (tmp_path / "grandchild").read_text().strip():
            break
        time.sleep(0.02)
    grandchild = int((tmp_path / "grandchild").read_text())
    stop_children([Child("sh", proc, tmp_path / "log")], grace_s=0.5)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.1)
    assert not alive(grandchild)


def alive(pid: int) -> bool:
    """Running (a killed process may linger as a zombie until its new parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_fleet_module_does_not_import_torch_or_llama_cpp():
    code = ("import sys, deploy.fleet, deploy.fleet_cli, deploy.loadgen; "
            "print(sorted(m for m in ('torch', 'llama_cpp', 'redis') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stderr


def test_prometheus_targets_name_the_gateway_and_every_device(tmp_path):
    from deploy.fleet import Fleet, FleetConfig, prometheus_targets
    from deploy.loadgen import Agent

    fleet = Fleet(FleetConfig(out_dir=tmp_path), gateway_metrics_port=9464,
                  agents=[Agent("dev-01", "http://127.0.0.1:8081"), Agent("dev-02", "http://127.0.0.1:8082")])
    assert prometheus_targets(fleet) == [
        {"targets": ["127.0.0.1:9464"], "labels": {"job": "gateway"}},
        {"targets": ["127.0.0.1:8081"], "labels": {"job": "edge", "device": "dev-01"}},
        {"targets": ["127.0.0.1:8082"], "labels": {"job": "edge", "device": "dev-02"}},
    ]


def test_a_run_dir_adapter_is_copied_per_device_without_stale_gguf(tmp_path):
    from deploy.fleet import FleetConfig, device_adapter

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "adapter" / "adapter.gguf").write_text("stale")
    (run / "state.json").write_text('{"lambda": 0.5}')
    cfg = FleetConfig(out_dir=tmp_path / "out", adapter=str(run))
    a, b = device_adapter(cfg, "dev-01"), device_adapter(cfg, "dev-02")
    assert a != b
    for copy in (a, b):
        assert (Path(copy) / "state.json").is_file()
        assert (Path(copy) / "adapter" / "adapter_config.json").is_file()
        assert not (Path(copy) / "adapter" / "adapter.gguf").exists()
    gguf = run / "adapter" / "adapter.gguf"
    assert device_adapter(FleetConfig(out_dir=tmp_path, adapter=str(gguf)), "dev-01") == str(gguf)
