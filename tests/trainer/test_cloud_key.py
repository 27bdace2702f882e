"""The gateway device key is a secret: never in RUN_DIR/config.toml, found again on resume through
`cloud.api_key_file` or env DAGRPO_GATEWAY_KEY; TLS options reach the client."""

from __future__ import annotations

import pytest

from collab.channel import ClientTLS
from dagrpo.errors import UserError
from trainer.cloud import gateway_key, make_cloud
from trainer.config import CloudConfig, load_config
from trainer.train import train

def test_the_key_comes_from_the_config_then_the_file_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGRPO_GATEWAY_KEY", raising=False)
    (tmp_path / "key").write_text("dgk_file\n")
    cfg = CloudConfig(backend="gateway", address="127.0.0.1:9")
    with pytest.raises(UserError, match="needs a device key"):
        gateway_key(cfg)
    monkeypatch.setenv("DAGRPO_GATEWAY_KEY", "dgk_env")
    assert gateway_key(cfg) == "dgk_env"
    assert gateway_key(cfg.model_copy(update={"api_key_file": str(tmp_path / "key")})) == "dgk_file"
    assert gateway_key(CloudConfig(backend="gateway", address="a:1", api_key="dgk_cfg")) == "dgk_cfg"
    with pytest.raises(UserError, match="file not found"):
        gateway_key(CloudConfig(backend="gateway", address="a:1", api_key_file=str(tmp_path / "none")))


def test_plaintext_to_a_remote_gateway_is_a_user_error(monkeypatch):
    monkeypatch.setenv("DAGRPO_GATEWAY_KEY", "dgk_env")
    with pytest.raises(UserError, match="refusing plaintext"):
        make_cloud(CloudConfig(backend="gateway", address="10.0.0.7:50051"), 0)
    make_cloud(CloudConfig(backend="gateway", address="10.0.0.7:50051", insecure=True), 0).close()
    with pytest.raises(ValueError, match="go together"):
        CloudConfig(backend="gateway", address="a:1", tls_cert="c.crt")


def test_tls_options_reach_the_client(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("collab.gateway_client.GatewayCloud", lambda *a, **kw: seen.update(kw))
    make_cloud(CloudConfig(backend="gateway", address="gw:1", api_key="k", tls_ca="ca.crt",
                           tls_cert="c.crt", tls_key="c.key"), 0)
    assert seen["tls"] == ClientTLS("ca.crt", "c.crt", "c.key") and seen["insecure"] is False


@pytest.mark.integration
def test_a_run_never_writes_the_key_and_resume_finds_it_in_the_environment(tiny_cfg, tmp_path, monkeypatch):
    from cloud_gateway.auth import add_key
    from cloud_gateway.config import load_settings
    from cloud_gateway.server import EmbeddedGateway

    key = add_key(tmp_path / "keys.toml", "d1")
    settings = load_settings(port=0, metrics_port=-1, keys_file=tmp_path / "keys.toml",
                             sqlite_path=tmp_path / "gw.db")
    with EmbeddedGateway(settings) as gw:
        cfg = tiny_cfg('phases=[{tasks=["math"], steps=2, tau=0.3}]', 'cloud.backend="gateway"',
                       f'cloud.address="{gw.address}"', f'cloud.api_key="{key}"')
        train(cfg, tmp_path / "run", max_steps=0, progress=False)  # writes config.toml
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert key not in written and key[4:20] not in written
    again = load_config(tmp_path / "run" / "config.toml")
    assert again.cloud.address == gw.address and not again.cloud.api_key.get_secret_value()
    monkeypatch.setenv("DAGRPO_GATEWAY_KEY", key)
    assert gateway_key(again.cloud) == key
