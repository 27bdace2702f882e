"""What `dagrpo fleet` hands its children: an allow-list of the environment (no admin key, no
cloud keys, no tokens), and with --tls certificates for mutual TLS to a real gateway."""

from __future__ import annotations

import pytest

from deploy.fleet import ADMIN, Fleet, FleetConfig, child_env, make_keys, start_gateway, stop_children

OPERATOR = {
    "PATH": "/usr/bin", "HOME": "/home/op", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
    "GATEWAY_ADMIN_KEY": "dgk_admin", "GATEWAY_OPENAI_API_KEY": "sk-cloud", "GATEWAY_OPENAI_MODEL": "m",
    "EDGE_API_KEY": "dgk_operator", "EDGE_MODEL_PATH": "/m.gguf", "OPENAI_API_KEY": "sk-1",
    "HF_TOKEN": "hf_x", "AWS_SECRET_ACCESS_KEY": "aws", "GITHUB_TOKEN": "ghp_x", "SSH_AUTH_SOCK": "/tmp/a",
}


def test_the_gateway_gets_its_own_settings_and_no_admin_key():
    env = child_env(OPERATOR, "GATEWAY_", {"GATEWAY_REFERENCE_LATENCY_S": "0"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/op", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
                   "GATEWAY_OPENAI_API_KEY": "sk-cloud", "GATEWAY_OPENAI_MODEL": "m",
                   "PYTHONUNBUFFERED": "1", "GATEWAY_REFERENCE_LATENCY_S": "0"}


def test_an_agent_gets_only_its_own_key():
    env = child_env(OPERATOR, "EDGE_", {"EDGE_API_KEY": "dgk_dev01"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/op", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
                   "EDGE_MODEL_PATH": "/m.gguf", "PYTHONUNBUFFERED": "1", "EDGE_API_KEY": "dgk_dev01"}
    assert child_env({"EDGE_API_KEY": "dgk_operator"}, "EDGE_", {}) == {"PYTHONUNBUFFERED": "1"}


@pytest.mark.integration
@pytest.mark.parametrize("tls", [False, True])
def test_a_real_gateway_child_sees_no_secret_of_the_operator(tmp_path, monkeypatch, tls):
    from cloud_gateway.certs import make_certs
    from collab.gateway_client import AdminClient
    from deploy.fleet import client_tls

    for k, v in OPERATOR.items():
        if k not in ("PATH", "HOME", "PYTHONPATH", "EDGE_MODEL_PATH"):
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("GATEWAY_OPENAI_API_KEY")
    fleet = Fleet(FleetConfig(out_dir=tmp_path, tls=tls))
    _, admin_key = make_keys(tmp_path / "keys.toml", ["dev-01"])
    if tls:
        fleet.certs = tmp_path / "certs"
        make_certs(fleet.certs, [], ["dev-01", ADMIN])
    try:
        child = start_gateway(fleet, tmp_path / "keys.toml")  # waits for health SERVING (over mTLS with tls)
        environ = dict(e.split("=", 1) for e in
                       open(f"/proc/{child.proc.pid}/environ").read().split("\0") if "=" in e)
        with AdminClient(fleet.gateway_address, admin_key, tls=client_tls(fleet.certs, ADMIN)) as admin:
            assert admin.budgets().policies
    finally:
        stop_children(fleet.children, 5)
    leaked = {k for k, v in environ.items() if v in ("dgk_admin", "sk-1", "hf_x", "aws", "ghp_x", "dgk_operator")}
    assert not leaked and "SSH_AUTH_SOCK" not in environ
    assert environ["GATEWAY_OPENAI_MODEL"] == "m" and environ["LC_ALL"] == "C.UTF-8"
