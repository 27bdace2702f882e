"""The agent's gateway connection: TLS / mutual TLS to a real gateway on loopback, and no
plaintext to a remote gateway unless EDGE_GATEWAY_INSECURE says so."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings
from edge_fakes import FakeModel


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    from cloud_gateway.certs import make_certs

    d = tmp_path_factory.mktemp("certs")
    make_certs(d, [], ["dev-01"])
    return d


def test_plaintext_to_a_remote_gateway_is_refused_at_load(tmp_path, certs):
    with pytest.raises(ValidationError, match="refusing plaintext gRPC to gateway:50051"):
        EdgeSettings(gateway="gateway:50051")
    assert EdgeSettings(gateway="gateway:50051", gateway_insecure=True).gateway_tls_files() is None
    tls = EdgeSettings(gateway="gateway:50051", gateway_ca=str(certs / "ca.crt")).gateway_tls_files()
    assert tls.ca == str(certs / "ca.crt") and not tls.cert
    assert EdgeSettings(gateway="127.0.0.1:50051").gateway_tls_files() is None
    with pytest.raises(ValidationError, match="needs its key"):
        EdgeSettings(gateway="gateway:1", gateway_cert=str(certs / "clients" / "dev-01.crt"))
    with pytest.raises(ValidationError, match="file not found"):
        EdgeSettings(gateway="gateway:1", gateway_ca=str(tmp_path / "missing.crt"))


def test_the_serve_flags_reach_the_settings(monkeypatch):
    from edge_agent.cli import _settings, register
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["edge", "serve", "--gateway", "10.0.0.7:50051", "--gateway-insecure"])
    assert _settings(args).gateway_insecure is True


@pytest.mark.integration
def test_the_agent_asks_a_mutual_tls_gateway(tmp_path, certs):
    from cloud_gateway.auth import add_key
    from cloud_gateway.config import load_settings
    from cloud_gateway.server import EmbeddedGateway

    key = add_key(tmp_path / "keys.toml", "dev-01")
    gw_settings = load_settings(port=0, metrics_port=-1, keys_file=tmp_path / "keys.toml",
                                sqlite_path=tmp_path / "gw.db", reference_accuracy=1.0,
                                tls_cert=certs / "server.crt", tls_key=certs / "server.key",
                                tls_client_ca=certs / "ca.crt")
    with EmbeddedGateway(gw_settings) as gw:
        s = EdgeSettings(gateway=gw.address, api_key=key, outbox_path=str(tmp_path / "u.sqlite"),
                         flush_interval_s=3600, cloud_retries=0, gateway_ca=str(certs / "ca.crt"),
                         gateway_cert=str(certs / "clients" / "dev-01.crt"),
                         gateway_key=str(certs / "clients" / "dev-01.key"))
        with TestClient(create_app(s, model=FakeModel())) as tc:
            r = tc.post("/v1/answer", json={"task": "math", "question": "HARD", "example_id": "math/test/1"})
        assert r.status_code == 200 and r.json()["route"] == "cloud", r.text
        no_cert = s.model_copy(update={"gateway_cert": "", "gateway_key": ""})
        with TestClient(create_app(no_cert, model=FakeModel())) as tc:
            r = tc.post("/v1/answer", json={"task": "math", "question": "HARD", "example_id": "math/test/1"})
        assert r.json()["cloud_skipped_reason"] == "unavailable"
