"""Container healthchecks (docker-compose `healthcheck: test:`), exit 0 when healthy, else 1.

    python -m deploy.healthcheck grpc 127.0.0.1:50051      # gRPC health service says SERVING
    python -m deploy.healthcheck http http://127.0.0.1:8080/health   # HTTP 200

Only the standard library (and grpc for the gRPC check, present in the gateway image).
"""

from __future__ import annotations

import sys
import urllib.request


def grpc_ok(address: str, timeout_s: float = 3.0) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=timeout_s)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str, timeout_s: float = 3.0) -> bool:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # raises on 4xx/5xx
        return r.status == 200


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grpc", "http"):
        print("usage: python -m deploy.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    try:
        ok = (grpc_ok if argv[0] == "grpc" else http_ok)(argv[1])
    except Exception as exc:  # any failure to get a healthy answer is "unhealthy"
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
