"""AssistStream on a real gateway (gRPC on loopback, SQLite, reference backend): metered and keyed
exactly like Assist; a refusal is CloudRefused before any text; a retry after a closed stream
is not charged twice."""

from __future__ import annotations

import pytest

from collab.cloud import CloudRefused, CloudReply
from collab.gateway_client import AdminClient, GatewayCloud
from collab.reference import reference_completion
from collab.tasks import get_example

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def _stream(cloud, ex, key, **kw):
    parts = list(cloud.assist_stream(ex, MESSAGES, idempotency_key=key, **kw))
    assert isinstance(parts[-1], CloudReply) and all(isinstance(p, str) for p in parts[:-1])
    return "".join(parts[:-1]), parts[-1]


def _budget(gateway, keys):
    return AdminClient(gateway.address, keys.admin).budgets("d1", "math").budgets[0]


def test_stream_is_metered_like_assist_and_a_retry_replays(gateway, keys):
    ex = get_example("math/test/1")
    with GatewayCloud(gateway.address, keys.d1, timeout_s=10) as cloud:
        text, reply = _stream(cloud, ex, "s1", group_help=1, group_size=1)
        again, replay = _stream(cloud, ex, "s1", group_help=1, group_size=1)
        unary = cloud.assist(ex, MESSAGES, idempotency_key="s1")  # the same key through Assist
    assert text == reply.completion == reference_completion(ex)
    assert again == replay.completion == unary.completion == text
    b = _budget(gateway, keys)
    assert (b.cloud_calls, b.help_requests) == (1, 1)
    assert b.tokens == reply.prompt_tokens + reply.completion_tokens > 0


def test_refused_stream_raises_before_any_text(gateway, keys):
    AdminClient(gateway.address, keys.admin).set_tau("math", [(0, 0.0)], mode="enforce", burst=1.0)
    ex = get_example("math/test/1")
    with GatewayCloud(gateway.address, keys.d1, timeout_s=10) as cloud:
        _stream(cloud, ex, "granted")
        stream = cloud.assist_stream(ex, MESSAGES, idempotency_key="refused")
        with pytest.raises(CloudRefused) as info:
            next(stream)
    assert info.value.telemetry.credit < 1
    b = _budget(gateway, keys)
    assert (b.cloud_calls, b.denials) == (1, 1)


def test_a_stream_closed_early_stores_no_completion_and_a_retry_is_not_charged_twice(gateway, keys):
    ex = get_example("math/test/1")
    with GatewayCloud(gateway.address, keys.d1, timeout_s=10) as cloud:
        stream = cloud.assist_stream(ex, MESSAGES, idempotency_key="c1")
        first = next(stream)
        stream.close()  # the device went away after the first delta
        text, reply = _stream(cloud, ex, "c1")
    assert first and text.startswith(first) and reply.completion == text
    assert _budget(gateway, keys).cloud_calls == 1
