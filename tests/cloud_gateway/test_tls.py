"""TLS and mutual TLS on a real gateway on loopback; plaintext off loopback refused on both ends.

Certificates come from `make_certs` (openssl): the fleet's CA, and a second, unrelated CA playing
a man in the middle.
"""

from __future__ import annotations

import stat

import grpc
import pytest
from pydantic import ValidationError

from cloud_gateway.certs import make_certs
from cloud_gateway.config import load_settings
from cloud_gateway.server import EmbeddedGateway
from collab.channel import ClientTLS, InsecureChannel, is_loopback, target_host
from collab.cloud import CloudUnavailable
from collab.gateway_client import AdminClient, GatewayCloud
from dagrpo.cli import main


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_certs(d / "fleet", ["gateway"], ["d1", "ops"])
    make_certs(d / "other", [], ["d1"])
    return d


def _gateway(settings, certs, mutual: bool):
    fleet = certs / "fleet"
    extra = {"tls_client_ca": fleet / "ca.crt"} if mutual else {}
    return EmbeddedGateway(settings.model_copy(update={
        "tls_cert": fleet / "server.crt", "tls_key": fleet / "server.key", **extra}))


def _client(address, key, tls=None, **kw) -> GatewayCloud:
    return GatewayCloud(address, key, tls=tls, timeout_s=2, retries=0, **kw)


@pytest.mark.parametrize("address, host, loopback", [
    ("127.0.0.1:50051", "127.0.0.1", True), ("localhost:1", "localhost", True), ("[::1]:5", "::1", True),
    ("dns:///127.0.0.2:5", "127.0.0.2", True), ("unix:/tmp/gw.sock", "localhost", True),
    ("10.0.0.7:50051", "10.0.0.7", False), ("gateway:50051", "gateway", False), ("0.0.0.0", "0.0.0.0", False),
    ("::", "::", False), ("[2001:db8::1]:443", "2001:db8::1", False),
])
def test_target_host_and_loopback(address, host, loopback):
    assert target_host(address) == host and is_loopback(host) is loopback


def test_plaintext_to_a_remote_gateway_is_refused_unless_insecure():
    for make in (lambda **kw: GatewayCloud("10.0.0.7:50051", "dgk_x", **kw),
                 lambda **kw: AdminClient("gateway.example:50051", "dgk_admin", **kw)):
        with pytest.raises(InsecureChannel, match="clear text"):
            make()
        make(insecure=True).close()  # the channel is lazy: nothing is sent here
        make(tls=ClientTLS()).close()


def test_the_gateway_refuses_plaintext_on_a_non_loopback_host(tmp_path, certs):
    with pytest.raises(ValidationError, match="refusing plaintext gRPC on 0.0.0.0"):
        load_settings(host="0.0.0.0")
    assert load_settings(host="0.0.0.0", allow_insecure=True).allow_insecure
    fleet = certs / "fleet"
    load_settings(host="0.0.0.0", tls_cert=fleet / "server.crt", tls_key=fleet / "server.key")
    with pytest.raises(ValidationError, match="go together"):
        load_settings(tls_cert=fleet / "server.crt")
    with pytest.raises(ValidationError, match="needs tls_cert"):
        load_settings(tls_client_ca=fleet / "ca.crt")
    with pytest.raises(ValidationError, match="file not found"):
        load_settings(tls_cert=tmp_path / "no.crt", tls_key=fleet / "server.key")
    assert main(["gateway", "serve", "--host", "0.0.0.0", "--keys-file", str(tmp_path / "k.toml")]) == 2


def test_client_cert_and_key_go_together():
    with pytest.raises(ValueError, match="needs its key"):
        ClientTLS(ca="ca.crt", cert="c.crt")
    assert ClientTLS.from_options(False) is None and ClientTLS.from_options(False, ca="x") == ClientTLS("x")


def test_make_certs_keeps_keys_private_and_existing_files(certs):
    fleet = certs / "fleet"
    for key in (fleet / "ca.key", fleet / "server.key", fleet / "clients" / "d1.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = (fleet / "ca.crt").read_bytes()
    assert make_certs(fleet, [], ["d1", "d3"]) == [fleet / "clients" / "d3.crt", fleet / "clients" / "d3.key"]
    assert (fleet / "ca.crt").read_bytes() == before
    with pytest.raises(ValueError, match="client names"):
        make_certs(fleet, [], ["../evil"])


@pytest.mark.integration
def test_tls_gateway_serves_clients_that_trust_its_ca_only(settings, keys, certs):
    fleet, other = certs / "fleet", certs / "other"
    with _gateway(settings, certs, mutual=False) as gw:
        port = gw.address.rpartition(":")[2]
        for address in (gw.address, f"localhost:{port}"):  # the SAN holds both
            with _client(address, keys.d1, ClientTLS(ca=str(fleet / "ca.crt"))) as ok:
                assert ok.budget("math").task == "math"
        with _client(gw.address, keys.d1) as plain, pytest.raises(CloudUnavailable):
            plain.budget("math")  # a plaintext client gets no answer (and sent its key to nobody)
        with _client(gw.address, keys.d1, ClientTLS(ca=str(other / "ca.crt"))) as mitm, \
                pytest.raises(CloudUnavailable):
            mitm.budget("math")  # a gateway certificate from another CA is not trusted


@pytest.mark.integration
def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca(settings, keys, certs):
    fleet, other = certs / "fleet", certs / "other"
    ca = str(fleet / "ca.crt")
    mine = ClientTLS(ca, str(fleet / "clients" / "d1.crt"), str(fleet / "clients" / "d1.key"))
    foreign = ClientTLS(ca, str(other / "clients" / "d1.crt"), str(other / "clients" / "d1.key"))
    with _gateway(settings, certs, mutual=True) as gw:
        with _client(gw.address, keys.d1, mine) as ok:
            assert ok.report_usage("math", 3, 0).responses == 3
        for tls in (ClientTLS(ca), foreign, None):
            with _client(gw.address, keys.d1, tls) as refused, pytest.raises(CloudUnavailable):
                refused.budget("math")
        admin_tls = ClientTLS(ca, str(fleet / "clients" / "ops.crt"), str(fleet / "clients" / "ops.key"))
        with AdminClient(gw.address, keys.admin, tls=admin_tls) as admin:
            assert any(b.device == "d1" for b in admin.budgets().budgets)
        with AdminClient(gw.address, keys.admin, tls=ClientTLS(ca)) as admin, pytest.raises(grpc.RpcError) as info:
            admin.budgets()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.integration
def test_admin_cli_over_mutual_tls(settings, keys, certs, monkeypatch, capsys):
    fleet = certs / "fleet"
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", keys.admin)
    with _gateway(settings, certs, mutual=True) as gw:
        tls = ["--tls-ca", str(fleet / "ca.crt"), "--tls-cert", str(fleet / "clients" / "ops.crt"),
               "--tls-key", str(fleet / "clients" / "ops.key")]
        assert main(["gateway", "set-tau", "math", "0.2", "--address", gw.address, *tls]) == 0
        assert "task math: tau 0:0.2" in capsys.readouterr().out
        assert main(["gateway", "budgets", "--address", gw.address, *tls[:2]]) == 2
        assert "UNAVAILABLE" in capsys.readouterr().err
    assert main(["gateway", "budgets", "--address", "10.0.0.7:50051"]) == 2
    assert "refusing plaintext" in capsys.readouterr().err
