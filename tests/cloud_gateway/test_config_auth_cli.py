"""Settings (env, TOML, validation), key hashing and the add-device / admin CLI commands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_gateway.auth import KeyRing, add_key, hash_key
from cloud_gateway.config import TaskBudget, load_settings
from dagrpo.cli import main


def test_env_overrides_toml_and_flags_override_env(tmp_path, monkeypatch):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('port = 7000\nbackend = "openai"\n[tasks.math]\nschedule = [[0, 0.1], [100, 0.5]]\n'
                   'mode = "enforce"\n')
    monkeypatch.setenv("GATEWAY_PORT", "7001")
    s = load_settings(cfg)
    assert (s.port, s.backend, s.tasks["math"].mode) == (7001, "openai", "enforce")
    assert s.tasks["math"].policy().schedule == ((0, 100_000), (100, 500_000))
    assert load_settings(cfg, port=7002).port == 7002


@pytest.mark.parametrize("env, field", [
    ({"GATEWAY_PORT": "seventy"}, "port"),
    ({"GATEWAY_REFERENCE_ACCURACY": "1.5"}, "reference_accuracy"),
    ({"GATEWAY_TASKS__MATH__TAU": "2"}, "tau"),
    ({"GATEWAY_BACKEND": "gpt"}, "backend"),
])
def test_bad_settings_name_the_field(monkeypatch, env, field):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError, match=field):
        load_settings()


def test_task_budget_needs_exactly_one_of_tau_and_schedule():
    with pytest.raises(ValidationError, match="exactly one"):
        TaskBudget()
    with pytest.raises(ValidationError, match="exactly one"):
        TaskBudget(tau=0.1, schedule=[(0, 0.1)])
    with pytest.raises(ValidationError, match="first step"):
        TaskBudget(schedule=[(5, 0.1)])
    with pytest.raises(ValidationError, match="tau"):
        TaskBudget(schedule=[(0, 0.1), (9, 1.2)])


def test_keys_are_stored_hashed_and_identify_their_device(tmp_path):
    path = tmp_path / "keys.toml"
    key = add_key(path, "edge-1")
    admin = add_key(path, "ops", admin=True)
    text = path.read_text()
    assert key not in text and admin not in text and hash_key(key) in text
    ring = KeyRing.load(path)
    assert ring.identify(key).name == "edge-1" and not ring.identify(key).admin
    assert ring.identify(admin).admin
    assert ring.identify(key + "x") is None
    with pytest.raises(ValueError, match="already has a key"):
        add_key(path, "edge-1")
    with pytest.raises(ValueError, match="must match"):
        add_key(path, "a:b")


def test_cli_add_device_prints_key_once(tmp_path, capsys):
    path = tmp_path / "k.toml"
    assert main(["gateway", "add-device", "edge-7", "--keys-file", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert KeyRing.load(path).identify(key).name == "edge-7"
    assert main(["gateway", "add-device", "edge-7", "--keys-file", str(path)]) == 2
    assert "already has a key" in capsys.readouterr().err


def test_cli_admin_commands_need_a_key_and_a_valid_tau(monkeypatch, capsys):
    monkeypatch.delenv("GATEWAY_ADMIN_KEY", raising=False)
    assert main(["gateway", "budgets"]) == 2
    assert "no admin key" in capsys.readouterr().err
    assert main(["gateway", "set-tau", "math"]) == 2
    assert "exactly one of TAU or --schedule" in capsys.readouterr().err
    assert main(["gateway", "set-tau", "math", "--schedule", "0-0.1"]) == 2
    assert "FROM:TAU" in capsys.readouterr().err


@pytest.mark.integration
def test_cli_admin_commands_against_a_running_gateway(gateway, keys, monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", keys.admin)
    addr = ["--address", gateway.address]
    assert main(["gateway", "set-tau", "math", "--schedule", "0:0.1,50:0.4", "--mode", "enforce", *addr]) == 0
    assert "task math: tau 0:0.1,50:0.4 mode enforce" in capsys.readouterr().out
    assert main(["gateway", "set-tau", "math", "1.5", *addr]) == 2
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    from collab.gateway_client import GatewayCloud
    from collab.tasks import get_example

    ex = get_example("science/test/0")
    with GatewayCloud(gateway.address, keys.d1) as cloud:  # two help requests served, none reported
        cloud.assist(ex, [{"role": "user", "content": "q"}], idempotency_key="a", group_help=2, group_size=4,
                     report_key="r")
        cloud.report_usage("science", 4, 0, idempotency_key="r")
    assert main(["gateway", "budgets", *addr]) == 0
    out = capsys.readouterr().out
    assert "task science: tau 0:0.3 mode meter" in out
    header, row = [line.split() for line in out.splitlines() if line.startswith(("device", "d1"))]
    assert dict(zip(header, row))["help"] == "2" and dict(zip(header, row))["reported"] == "0"
    assert dict(zip(header, row))["mismatch"] == "1"
    assert main(["gateway", "reset", "d1", *addr]) == 0
    assert "reset 1 budget(s) of d1" in capsys.readouterr().out
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", keys.d1)
    assert main(["gateway", "budgets", *addr]) == 2
    assert "PERMISSION_DENIED" in capsys.readouterr().err


def test_serve_with_a_bad_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["gateway", "serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["gateway", "serve", "--keys-file", str(tmp_path / "nokeys.toml"), "--port", "0"]) == 2
    assert "keys file not found" in capsys.readouterr().err


def test_limits_and_message_size_are_configured_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_LIMITS__RESPONSES_PER_S", "12.5")
    s = load_settings()
    assert s.limits.responses_per_s == 12.5 and s.limits.store_limits().responses_rate == 12_500
    with pytest.raises(ValidationError, match="max_message_bytes"):
        load_settings(max_prompt_chars=100_000)  # 4 bytes a character no longer fit in 256 KiB
    with pytest.raises(ValidationError, match="responses_burst"):
        load_settings(limits={"responses_burst": 0})


def test_cli_revoke_removes_a_key(tmp_path, capsys):
    path = tmp_path / "k.toml"
    assert main(["gateway", "add-device", "edge-1", "--keys-file", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["gateway", "revoke", "edge-1", "--keys-file", str(path)]) == 0
    assert "revoked edge-1" in capsys.readouterr().out
    assert KeyRing.load(path).identify(key) is None
    assert main(["gateway", "revoke", "edge-1", "--keys-file", str(path)]) == 2
    assert "has no key" in capsys.readouterr().err
