"""`dagrpo edge ...` / `dagrpo export-adapter`: help, config errors, the train command's wiring."""

import pytest

from dagrpo.cli import main
from dagrpo.errors import UserError
from dagrpo.edge_train import point_at_gateway, push_adapter
from edge_adapters import write_random_adapter


def test_help_texts(capsys):
    for argv in (["edge", "--help"], ["edge", "serve", "--help"], ["edge", "train", "--help"],
                 ["export-adapter", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    assert "EDGE_<OPTION>" in capsys.readouterr().out


def test_bad_setting_is_one_line_naming_the_field(capsys, monkeypatch):
    monkeypatch.setenv("EDGE_QUEUE_SIZE", "0")
    assert main(["edge", "serve"]) == 2
    err = capsys.readouterr().err
    assert "queue_size" in err and err.count("\n") == 1


def test_export_adapter_command(tmp_path, capsys):
    write_random_adapter(tmp_path / "run" / "adapter", seed=0, r=2)
    assert main(["export-adapter", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("run/adapter/adapter.gguf") and (tmp_path / "run/adapter/adapter.gguf").is_file()
    assert main(["export-adapter", str(tmp_path)]) == 2


def test_train_points_the_trainer_at_the_gateway_and_keeps_the_key_out_of_config_toml():
    from trainer.config import load_config, to_toml

    cfg = point_at_gateway(load_config("configs/smoke.toml"), {"address": "127.0.0.1:5005", "tls_ca": "ca.crt"},
                           "dgk_secret")
    assert (cfg.cloud.backend, cfg.cloud.address, cfg.cloud.tls_ca) == ("gateway", "127.0.0.1:5005", "ca.crt")
    assert cfg.cloud.api_key.get_secret_value() == "dgk_secret"
    assert "dgk_secret" not in to_toml(cfg) + repr(cfg) + cfg.model_dump_json()
    assert "api_key =" not in to_toml(cfg)


def test_train_reads_the_key_from_a_file_or_the_environment(tmp_path, monkeypatch):
    import argparse

    from edge_agent import cli

    seen = {}
    monkeypatch.setattr("dagrpo.edge_train.edge_train", lambda *a, **kw: seen.update(kw) or {})
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    base = ["edge", "train", "--config", "c.toml", "--out", "o", "--gateway", "gw:1", "--gateway-ca", "ca.crt"]
    monkeypatch.setenv("EDGE_API_KEY", "dgk_env")
    cli._train(parser.parse_args(base))
    assert seen["api_key"] == "dgk_env" and seen["gateway"]["tls_ca"] == "ca.crt"
    cli._train(parser.parse_args([*base, "--api-key-file", "k.txt"]))
    assert seen["api_key"] == "" and seen["gateway"]["api_key_file"] == "k.txt"


def test_push_to_an_unreachable_agent_says_where_the_adapter_is(tmp_path):
    with pytest.raises(UserError, match="unreachable.*adapter is in"):
        push_adapter("http://127.0.0.1:9", str(tmp_path), timeout_s=2)
