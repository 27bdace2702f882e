"""The gateway over real gRPC on loopback: every status code, replay, refusal, health, metrics."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from collab.cloud import CloudRefused
from collab.prompts import build_messages
from collab.reference import reference_completion
from collab.tasks import get_example
from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc
from collab.gateway_client import AdminClient, GatewayCloud

pytestmark = pytest.mark.integration
EX = "math/test/3"


def auth(key):
    return (("authorization", f"Bearer {key}"),)


def assist_req(key="k1", task="math", example_id=EX, content="What is 2+2?", **kw):
    return pb.AssistRequest(task=task, example_id=example_id, idempotency_key=key,
                            messages=[pb.ChatMessage(role="user", content=content)], **kw)


def code_of(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, timeout=10, **kw)
    return info.value.code(), info.value.details()


@pytest.fixture
def stubs(gateway):
    channel = grpc.insecure_channel(gateway.address)
    yield pb_grpc.CloudGatewayStub(channel), pb_grpc.GatewayAdminStub(channel), channel
    channel.close()


def test_assist_serves_reference_completion_and_replays_retries(gateway, keys):
    ex = get_example(EX)
    with GatewayCloud(gateway.address, keys.d1) as cloud:
        first = cloud.assist(ex, build_messages(ex.kind, ex.question), idempotency_key="a", group_help=2, group_size=8)
        again = cloud.assist(ex, build_messages(ex.kind, ex.question), idempotency_key="a")
        assert first.completion == again.completion == reference_completion(ex, correct=True)
        assert first.prompt_tokens > 0 and first.completion_tokens > 0
        t = cloud.budget("math")
    assert first.telemetry.mode == "meter" and first.telemetry.tau == pytest.approx(0.3)
    budget = AdminClient(gateway.address, keys.admin).budgets(device="d1").budgets[0]
    assert (budget.cloud_calls, budget.tokens) == (1, first.prompt_tokens + first.completion_tokens)
    assert t.responses == 0


def test_report_usage_ratio_and_idempotency(gateway, keys, stubs):
    with GatewayCloud(gateway.address, keys.d1) as cloud:
        t = cloud.report_usage("math", 8, 2, offline_help=2)  # help the gateway never saw: believed
        assert (t.report_ratio, t.responses, t.help_requests) == (0.25, 8, 2)
        t = cloud.report_usage("math", 4, 4, idempotency_key="r", offline_help=4)
        t2 = cloud.report_usage("math", 4, 4, idempotency_key="r", offline_help=4)
        assert t == t2 and (t.responses, t.help_requests, t.report_ratio) == (12, 6, 1.0)
        assert t.lifetime_ratio == 0.5 and t.window_ratio == 0.5
    stub = stubs[0]
    reply = stub.ReportUsage(pb.ReportUsageRequest(task="math", responses=4, help_requests=4, offline_help=4,
                                                   idempotency_key="r"), metadata=auth(keys.d1), timeout=10)
    assert reply.replayed and reply.telemetry.responses == 12


def test_enforce_refuses_without_credit_with_telemetry(gateway, keys):
    admin = AdminClient(gateway.address, keys.admin)
    policy = admin.set_tau("science", [(0, 0.5)], mode="enforce", burst=1.0)
    assert policy.mode == pb.MODE_ENFORCE and policy.burst == 1.0
    ex = get_example("science/test/0")
    msgs = build_messages(ex.kind, ex.question, ex.choices)
    with GatewayCloud(gateway.address, keys.d1, retries=0) as cloud:
        cloud.assist(ex, msgs, idempotency_key="s1")  # the full bucket: 1 credit
        with pytest.raises(CloudRefused) as info:
            cloud.assist(ex, msgs, idempotency_key="s2")
        t = info.value.telemetry
        assert (t.mode, t.credit, t.tau) == ("enforce", 0.0, 0.5)
        with pytest.raises(CloudRefused):  # the retry of a refused call is refused the same way
            cloud.assist(ex, msgs, idempotency_key="s2")
        assert cloud.report_usage("science", 2, 1, offline_help=1).report_ratio == 0.5  # earns 2 * 0.5
        assert cloud.assist(ex, msgs, idempotency_key="s3").telemetry.credit == 0.0
        # Device d2 has its own bucket.
    with GatewayCloud(gateway.address, keys.d2, retries=0) as other:
        assert other.assist(ex, msgs, idempotency_key="s2").completion
    d1 = admin.budgets(device="d1", task="science").budgets[0]
    assert (d1.cloud_calls, d1.denials) == (2, 1)


def test_unauthenticated(stubs, keys):
    stub = stubs[0]
    assert code_of(stub.GetBudget, pb.GetBudgetRequest(task="math"))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, msg = code_of(stub.GetBudget, pb.GetBudgetRequest(task="math"), metadata=auth("dgk_wrong"))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "unknown API key" in msg
    code, msg = code_of(stub.Assist, assist_req(), metadata=(("authorization", keys.d1),))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in msg


def test_permission_denied(stubs, keys):
    stub, admin, _ = stubs
    d1 = auth(keys.d1)
    cases = [
        (stub.GetBudget, pb.GetBudgetRequest(task="math", device="d2"), d1),
        (stub.Assist, assist_req(device="d2"), d1),
        (stub.ReportUsage, pb.ReportUsageRequest(task="math", responses=1, idempotency_key="x", device="d2"), d1),
        (admin.ResetDevice, pb.ResetDeviceRequest(device="d2"), d1),
        (admin.SetTau, pb.SetTauRequest(task="math", schedule=[pb.TauStep(tau=1.0)]), d1),
        (admin.ListBudgets, pb.ListBudgetsRequest(), d1),
        (stub.Assist, assist_req(), auth(keys.admin)),  # the admin key is not a device
    ]
    for fn, req, md in cases:
        code, msg = code_of(fn, req, metadata=md)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (req, msg)
    # The admin may read any device's budget.
    reply = stub.GetBudget(pb.GetBudgetRequest(task="math", device="d2"), metadata=auth(keys.admin), timeout=10)
    assert reply.telemetry.device == "d2"


def test_invalid_argument_with_clear_messages(stubs, keys):
    stub, admin, _ = stubs
    d1, ad = auth(keys.d1), auth(keys.admin)
    cases = [
        (stub.Assist, assist_req(content=""), d1, "empty prompt"),
        (stub.Assist, pb.AssistRequest(task="math", example_id=EX, idempotency_key="k"), d1, "empty prompt"),
        (stub.Assist, assist_req(content="x" * 40000), d1, "prompt too long"),
        (stub.Assist, assist_req(task="astrology"), d1, "unknown task"),
        (stub.Assist, assist_req(task="../etc"), d1, "not a valid task name"),
        (stub.Assist, assist_req(key=""), d1, "idempotency_key"),
        (stub.Assist, assist_req(example_id="math/test/x"), d1, "unknown example_id"),
        (stub.Assist, assist_req(example_id="science/test/1"), d1, "belongs to task"),
        (stub.Assist, assist_req(group_help=3, group_size=2), d1, "group_help"),
        (stub.ReportUsage, pb.ReportUsageRequest(task="math", responses=-1, idempotency_key="n"), d1, "counts"),
        (stub.ReportUsage, pb.ReportUsageRequest(task="math", responses=1, help_requests=-2, idempotency_key="n"),
         d1, "counts"),
        (stub.ReportUsage, pb.ReportUsageRequest(task="math", responses=1, help_requests=2, idempotency_key="n"),
         d1, "exceeds"),
        (stub.ReportUsage, pb.ReportUsageRequest(task="math", responses=2, help_requests=1, offline_help=2,
                                                 idempotency_key="n"), d1, "offline_help (2) exceeds"),
        (stub.Assist, assist_req(report_key="r" * 129), d1, "idempotency_key"),
        (stub.ReportUsage, pb.ReportUsageRequest(task="nope", responses=1, idempotency_key="n"), d1, "unknown task"),
        (admin.SetTau, pb.SetTauRequest(task="math", schedule=[pb.TauStep(tau=1.5)]), ad, "tau must lie in [0, 1]"),
        (admin.SetTau, pb.SetTauRequest(task="math", schedule=[pb.TauStep(tau=-0.1)]), ad, "tau must lie in [0, 1]"),
        (admin.SetTau, pb.SetTauRequest(task="math"), ad, "schedule"),
        (admin.SetTau, pb.SetTauRequest(task="math", schedule=[pb.TauStep(from_responses=5, tau=0.1)]), ad,
         "first step"),
        (admin.SetTau, pb.SetTauRequest(task="math", schedule=[pb.TauStep(tau=0.1)], burst=0.5), ad, "burst"),
    ]
    for fn, req, md, words in cases:
        code, msg = code_of(fn, req, metadata=md)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and words in msg, (req, code, msg)
    stub.ReportUsage(pb.ReportUsageRequest(task="math", responses=1, idempotency_key="used"), metadata=d1, timeout=10)
    code, msg = code_of(stub.Assist, assist_req(key="used"), metadata=d1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "already used" in msg
    stub.Assist(assist_req(key="ask"), metadata=d1, timeout=10)
    code, msg = code_of(stub.Assist, assist_req(key="ask", example_id="math/test/4"), metadata=d1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "another example" in msg


def test_message_over_grpc_limit_is_not_a_budget_refusal(gateway, keys):
    ex = get_example(EX)
    with GatewayCloud(gateway.address, keys.d1, retries=0) as cloud:
        with pytest.raises(grpc.RpcError) as info:  # not CloudRefused: no telemetry trailer
            cloud.assist(ex, [{"role": "user", "content": "x" * (5 * 1024 * 1024)}], idempotency_key="big")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert cloud.report_usage("math", 1, 0).responses == 1  # still serving


def test_admin_creates_task_with_tau_schedule_and_resets(gateway, keys):
    admin = AdminClient(gateway.address, keys.admin)
    policy = admin.set_tau("mmlu", [(0, 0.1), (10, 0.7)], mode="enforce", burst=2.0, window_responses=4)
    assert [(s.from_responses, s.tau) for s in policy.schedule] == [(0, 0.1), (10, 0.7)]
    with GatewayCloud(gateway.address, keys.d1) as cloud:
        assert cloud.report_usage("mmlu", 10, 1).tau == pytest.approx(0.7)  # now past the step
        assert cloud.budget("mmlu").tau == pytest.approx(0.7)
    assert admin.set_tau("mmlu", [(0, 0.2)]).mode == pb.MODE_ENFORCE  # mode kept when omitted
    assert admin.reset("d1", "mmlu") == 1
    with GatewayCloud(gateway.address, keys.d1) as cloud:
        t = cloud.budget("mmlu")
    assert (t.responses, t.credit, t.tau) == (0, 2.0, pytest.approx(0.2))


def test_health_reflection_and_metrics_after_bad_input(gateway, stubs, keys):
    stub, _, channel = stubs
    for _ in range(3):
        code_of(stub.Assist, assist_req(content=""), metadata=auth(keys.d1))
    stub.Assist(assist_req(key="m/0", group_help=2, group_size=4, report_key="m"), metadata=auth(keys.d1), timeout=10)
    stub.ReportUsage(pb.ReportUsageRequest(task="math", responses=5, help_requests=1, idempotency_key="m"),
                     metadata=auth(keys.d1), timeout=10)  # the device under-reports: the gateway saw 2
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "collab.v1.CloudGateway", "collab.v1.GatewayAdmin"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                           timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"collab.v1.CloudGateway", "collab.v1.GatewayAdmin", "grpc.health.v1.Health"} <= names
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'gateway_responses_total{task="math"} 5.0' in text
    assert 'gateway_help_requests_total{task="math"} 2.0' in text
    assert 'gateway_reported_help_requests_total{task="math"} 1.0' in text
    assert 'gateway_usage_mismatch_total{task="math"} 1.0' in text
    assert 'gateway_collab_ratio{task="math"} 0.4' in text
    assert 'gateway_rpc_latency_seconds_count{method="Assist"} 4.0' in text  # 3 bad, 1 served


def test_graceful_shutdown_finishes_in_flight_calls(tmp_path, keys):
    from cloud_gateway.config import load_settings
    from cloud_gateway.server import EmbeddedGateway

    settings = load_settings(port=0, metrics_port=-1, keys_file=keys.path, sqlite_path=tmp_path / "g.db",
                             reference_latency_s=1.0, reference_accuracy=1.0, grace_s=5.0)
    ex = get_example(EX)
    results = []
    with EmbeddedGateway(settings) as gw:
        cloud = GatewayCloud(gw.address, keys.d1, retries=0)
        worker = threading.Thread(target=lambda: results.append(
            cloud.assist(ex, build_messages(ex.kind, ex.question), idempotency_key="slow")))
        worker.start()
        time.sleep(0.3)  # the call is inside the backend's 1 s latency when shutdown starts
        assert not results
    worker.join(10)
    assert len(results) == 1 and results[0].completion == reference_completion(ex, True)
