"""grpcio server for the Faultline client: prints its port, serves until stdin closes.

Implements the Echo semantics generically over raw bytes, plus `Stats`, which returns JSON
counters so the Swift test can see what this server observed (started, cancelled handlers,
the deadline it was given).
"""
import json
import sys
import threading
import time
import urllib.parse
from concurrent import futures

import grpc

from echo_common import SERVICE, status_code

lock = threading.Lock()
stats = {"started": 0, "cancelled": 0, "last_time_remaining": None}


def prologue(context):
    md = {}
    for key, value in context.invocation_metadata():
        md.setdefault(key, value)
    with lock:
        stats["started"] += 1
        stats["last_time_remaining"] = context.time_remaining()
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
    if echoed:
        context.send_initial_metadata(echoed)
        context.set_trailing_metadata([("x-trailer-" + k[2:], v) for k, v in echoed])
    delay = int(md.get("x-delay-ms", "0"))
    end = time.monotonic() + delay / 1000
    while time.monotonic() < end:
        if not context.is_active():
            with lock:
                stats["cancelled"] += 1
            return md, False
        time.sleep(0.01)
    code = int(md.get("x-fail-code", "0"))
    if code:
        context.abort(status_code(code), urllib.parse.unquote(md.get("x-fail-message", "failed on request")))
    return md, True


def get(request, context):
    _, alive = prologue(context)
    return request if alive else b""


def expand(request, context):
    md, alive = prologue(context)
    if not alive:
        return
    for i in range(int(md.get("x-count", "3"))):
        yield request + f"#{i}".encode()


def collect(requests, context):
    _, alive = prologue(context)
    return b"".join(requests) if alive else b""


def update(requests, context):
    _, alive = prologue(context)
    if not alive:
        return
    for request in requests:
        yield request


def get_stats(request, context):
    with lock:
        return json.dumps(stats).encode()


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ])
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "Expand": grpc.unary_stream_rpc_method_handler(expand),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Update": grpc.stream_stream_rpc_method_handler(update),
        "Stats": grpc.unary_unary_rpc_method_handler(get_stats),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # the test closes stdin to stop us
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
