"""grpcio's own health client (grpcio-health-checking's `grpc_health.v1` modules) against a
Faultline server: `stub_health_client.py PORT SCENARIO [SERVICE]`.

Prints one JSON object; the Swift test asserts on it. The `watch` scenario drives status
changes through the Swift test's raw-bytes `SetHealth` control call after each update it sees,
so the order of events is fixed without sleeping.
"""
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stub_common import CONTROL_SERVICE, code_number

Request = health_pb2.HealthCheckRequest


def status_name(response):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)])
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = health_pb2_grpc.HealthStub(channel)
    control = channel.unary_unary(f"/{CONTROL_SERVICE}/SetHealth")
    out = {}

    if scenario == "check":
        results = {}
        for service in sys.argv[3:]:
            try:
                results[service] = status_name(stub.Check(Request(service=service), timeout=30))
            except grpc.RpcError as e:
                results[service] = {"code": code_number(e.code()), "details": e.details()}
        out = {"results": results}
    elif scenario == "watch":
        service = sys.argv[3]
        # After seeing each status, ask the server for the next change (if any).
        steps = {0: f"{service}=NOT_SERVING", 1: f"{service}=SERVING", 2: "shutdown"}
        seen = []
        stream = stub.Watch(Request(service=service), timeout=60)
        try:
            for update in stream:
                seen.append(status_name(update))
                command = steps.get(len(seen) - 1)
                if command is not None:
                    control(command.encode(), timeout=30)
            # Shutdown ends every watch: the loop above stops when the server closes the stream.
            out = {"seen": seen, "code": code_number(stream.code())}
        except grpc.RpcError as e:
            out = {"seen": seen, "code": code_number(e.code()), "details": e.details()}
    elif scenario == "watch_unknown":
        stream = stub.Watch(Request(service=sys.argv[3]), timeout=60)
        out = {"first": status_name(next(stream)), "cancelled": stream.cancel()}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))
    channel.close()


if __name__ == "__main__":
    main()
