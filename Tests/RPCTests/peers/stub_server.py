"""grpcio server with generated stubs for the Faultline client: prints its port, serves until
stdin closes.

Serves `EchoServicer` from the stubs grpcio-tools compiles at start-up, grpcio's own
`grpc.health.v1` servicer (from grpcio-health-checking), and raw-bytes control calls:
`Stats` (JSON counters of what this server observed) and `SetHealth` (`service=STATUS`, or
`shutdown` for the servicer's graceful shutdown) so the Swift test can drive health changes.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from echo_common import status_code
from stub_common import CONTROL_SERVICE, ECHO_SERVICE, compile_echo

echo_pb2, echo_pb2_grpc = compile_echo()
Response = echo_pb2.EchoResponse

lock = threading.Lock()
stats = {"started": 0, "cancelled": 0, "last_time_remaining": None}


def prologue(request, context):
    """Counts the call, echoes x-echo-* metadata, delays and fails as the request asks.
    Returns False when the call was cancelled while delaying."""
    with lock:
        stats["started"] += 1
        stats["last_time_remaining"] = context.time_remaining()
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
    if echoed:
        context.send_initial_metadata(echoed)
        context.set_trailing_metadata([("x-trailer-" + k[2:], v) for k, v in echoed])
    end = time.monotonic() + request.delay_ms / 1000
    while time.monotonic() < end:
        if not context.is_active():
            with lock:
                stats["cancelled"] += 1
            return False
        time.sleep(0.01)
    if request.fail_with_code:
        context.abort(status_code(request.fail_with_code), request.text)
    return True


class Echo(echo_pb2_grpc.EchoServicer):
    def Get(self, request, context):
        if not prologue(request, context):
            return Response()
        return Response(payload=request.payload, text=request.text)

    def Expand(self, request, context):
        if not prologue(request, context):
            return
        for i in range(request.count):
            yield Response(payload=request.payload, text=request.text, index=i)

    def Collect(self, request_iterator, context):
        requests = list(request_iterator)
        if requests and not prologue(requests[0], context):
            return Response()
        return Response(payload=b"".join(r.payload for r in requests),
                        text="".join(r.text for r in requests), index=len(requests))

    def Update(self, request_iterator, context):
        for i, request in enumerate(request_iterator):
            if i == 0 and not prologue(request, context):
                return
            yield Response(payload=request.payload, text=request.text, index=i)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ])
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(ECHO_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def get_stats(request, context):
        with lock:
            return json.dumps(stats).encode()

    def set_health(request, context):
        command = request.decode()
        if command == "shutdown":
            health_servicer.enter_graceful_shutdown()
        else:
            service, status = command.split("=", 1)
            health_servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        return b""

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(CONTROL_SERVICE, {
        "Stats": grpc.unary_unary_rpc_method_handler(get_stats),
        "SetHealth": grpc.unary_unary_rpc_method_handler(set_health),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # the test closes stdin to stop us
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
