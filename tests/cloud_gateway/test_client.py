"""GatewayCloud: retries reuse the idempotency key; unreachable -> CloudUnavailable."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from collab.cloud import CloudUnavailable
from collab.gateway_client import GatewayCloud
from collab.tasks import get_example

from .conftest import free_port


def test_unreachable_gateway_raises_cloud_unavailable_after_retries():
    cloud = GatewayCloud(f"127.0.0.1:{free_port()}", "dgk_x", timeout_s=0.5, retries=2, backoff_s=0.05)
    start = time.monotonic()
    with pytest.raises(CloudUnavailable, match="after 3 attempts"):
        cloud.report_usage("math", 1, 0)
    assert time.monotonic() - start < 5


@pytest.mark.integration
def test_retry_after_outage_reuses_the_key_and_is_counted_once(tmp_path, gateway_process, keys):
    """The gateway acknowledged, the reply was 'lost'; the device resends the same key while the
    gateway is down: the client retries through the outage and the call is counted once."""
    gw = gateway_process("--sqlite-path", str(tmp_path / "c.db"))
    cloud = GatewayCloud(gw.address, keys.d1, timeout_s=5, retries=12, backoff_s=0.05)
    first = cloud.report_usage("math", 4, 1, idempotency_key="k")
    gw.kill()
    restart = threading.Timer(0.5, gw.start)
    restart.start()
    again = cloud.report_usage("math", 4, 1, idempotency_key="k")
    restart.join()
    assert again == first and cloud.budget("math").responses == 4


@pytest.mark.integration
def test_bad_key_is_not_retried(gateway):
    cloud = GatewayCloud(gateway.address, "dgk_wrong", retries=5, backoff_s=1.0)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        cloud.assist(get_example("math/test/1"), [{"role": "user", "content": "q"}], idempotency_key="x")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and time.monotonic() - start < 1
