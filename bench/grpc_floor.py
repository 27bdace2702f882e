"""The floor under `gateway_load`: a grpc.aio CloudGateway server that answers a constant reply.

    python -m bench.grpc_floor --port PORT

Serves Assist and ReportUsage (and grpc.health.v1) with a fixed response, no auth, no store: its
CPU per call is what grpc.aio and protobuf cost in Python, the part of a metered call that no
change in the gateway can remove. `gateway_load --floor` runs it beside the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc

TELEMETRY = pb.Telemetry(device="bench", task="math", tau=0.3, responses=8, help_requests=2)


class Constant(pb_grpc.CloudGatewayServicer):
    async def ReportUsage(self, request, context):
        return pb.ReportUsageResponse(telemetry=TELEMETRY)

    async def Assist(self, request, context):
        return pb.AssistResponse(completion="42", prompt_tokens=1, completion_tokens=1, telemetry=TELEMETRY,
                                 backend="constant")


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_CloudGatewayServicer_to_server(Constant(), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    asyncio.run(serve(ap.parse_args().port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
