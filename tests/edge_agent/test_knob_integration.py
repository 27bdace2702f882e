"""The help knob end to end: a real gateway (gRPC on loopback, SQLite, meter mode) changes a
task's tau from 0.3 to 0.1; the real agent (SmolLM2 + a help-trained LoRA, calibrated with
`dagrpo calibrate`) follows it over its next answers, with no Assist refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE_KEY, ADMIN_KEY = "dgk_knob-device-key", "dgk_knob-admin-key"
N = 24  # answers per tau


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def calibrated(help_run):
    from trainer.calibrate import calibrate_run

    calibrate_run(help_run, [0.1, 0.3], tasks=["math"], n_val=48, n_test=8, max_new_tokens=48, threads=1,
                  verify=False)
    return help_run


def _ask_share(client, examples) -> float:
    asked = 0
    for ex in examples:
        r = client.post("/v1/answer", json={"task": "math", "question": ex.question, "example_id": ex.id,
                                            "options": {"max_tokens": 48}})
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["cloud_skipped_reason"] in (None, "not_requested"), a  # meter mode: never refused
        asked += a["requested_help"]
    return asked / len(examples)


def test_agent_follows_a_tau_set_on_the_gateway(tmp_path, calibrated):
    from cloud_gateway.auth import hash_key
    from cloud_gateway.config import GatewaySettings, TaskBudget
    from cloud_gateway.server import EmbeddedGateway
    from collab.gateway_client import AdminClient
    from collab.tasks import get_task
    from edge_agent.api import create_app
    from edge_agent.settings import EdgeSettings

    keys = tmp_path / "keys.toml"
    keys.write_text(f'[devices]\nedge-1 = "{hash_key(DEVICE_KEY)}"\n[admins]\nops = "{hash_key(ADMIN_KEY)}"\n')
    gs = GatewaySettings(port=_free_port(), metrics_port=-1, keys_file=keys, sqlite_path=tmp_path / "gw.db",
                         reference_accuracy=1.0, tasks={"math": TaskBudget(tau=0.3, mode="meter")})
    examples = get_task("math").examples("test", n=2 * N, seed=11)
    with EmbeddedGateway(gs) as gw:
        settings = EdgeSettings(gateway=gw.address, api_key=DEVICE_KEY, adapter_path=str(calibrated),
                                outbox_path=str(tmp_path / "usage.sqlite"), flush_interval_s=0.2, threads=1,
                                n_ctx=1024, help_knob=True, knob_default_tau=0.3)
        with TestClient(create_app(settings)) as client:
            before = _ask_share(client, examples[:N])
            bias_before = client.get("/v1/budget").json()["tasks"]["math"]["knob"]["bias"]
            AdminClient(gw.address, ADMIN_KEY).set_tau("math", [(0, 0.1)])
            client.app.state.service.flush_usage()  # the next telemetry carries the new tau
            bias_at_change = client.get("/v1/budget").json()["tasks"]["math"]["knob"]["bias"]
            after = _ask_share(client, examples[N:])
            budget = client.get("/v1/budget").json()["tasks"]["math"]
    print(f"help share: {before:.3f} at tau 0.3 (bias {bias_before:+.2f}), {after:.3f} at tau 0.1 "
          f"(bias {bias_at_change:+.2f} at the change)")
    # The new tau reaches the knob with the first telemetry after the change, and lowers the bias
    # at once (a lower quantile of the same scores, never a higher one).
    assert budget["tau"] == pytest.approx(0.1) and budget["knob"]["tau"] == pytest.approx(0.1)
    assert bias_at_change <= bias_before
    assert after <= 0.1 + 0.15  # 24 answers: within 0.15 of the new tau
