"""grpcio client with generated stubs against a Faultline server: `stub_client.py PORT SCENARIO`.

Prints one JSON object describing what grpcio observed; the Swift test asserts on it.
"""
import hashlib
import json
import queue
import sys

import grpc

from echo_common import metadata_dict
from stub_common import code_number, compile_echo

echo_pb2, echo_pb2_grpc = compile_echo()
Request = echo_pb2.EchoRequest


def response(r):
    return {"payload": r.payload.hex(), "text": r.text, "index": r.index}


def error(e):
    return {"code": code_number(e.code()), "details": e.details(),
            "trailing": metadata_dict(e.trailing_metadata())}


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)])
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = echo_pb2_grpc.EchoStub(channel)
    out = {}

    if scenario == "unary":
        reply, call = stub.Get.with_call(
            Request(payload=b"\x00\xff\x10", text="hello from a grpcio stub ✓"),
            metadata=[("x-echo-who", "grpcio-stub"), ("x-echo-raw-bin", b"\x00\xff\x10")], timeout=30)
        out = {"response": response(reply), "code": code_number(call.code()),
               "initial": metadata_dict(call.initial_metadata()),
               "trailing": metadata_dict(call.trailing_metadata())}
    elif scenario == "server_streaming":
        out = {"responses": [response(r) for r in stub.Expand(Request(payload=b"\x01", text="s", count=4), timeout=30)]}
    elif scenario == "client_streaming":
        parts = [Request(payload=bytes([i]), text=t) for i, t in enumerate(["a", "b", "", "c"])]
        out = {"response": response(stub.Collect(iter(parts), timeout=30))}
    elif scenario == "bidi":
        requests = (Request(payload=bytes([i]), text=f"m{i}") for i in range(50))
        out = {"responses": [response(r) for r in stub.Update(requests, timeout=30)]}
    elif scenario == "deadline":
        try:
            stub.Get(Request(text="slow", delay_ms=60000), timeout=1)
            out = {"code": 0}
        except grpc.RpcError as e:
            out = error(e)
    elif scenario == "cancel":
        # A bidirectional call whose first echo proves the server's handler is running; then
        # cancel it while the handler waits for the next request.
        pending = queue.Queue()
        pending.put(Request(text="first"))

        def requests():
            while True:
                item = pending.get()
                if item is None:
                    return
                yield item

        call = stub.Update(requests(), timeout=60)
        first = next(call)
        out = {"first": first.text, "cancelled": call.cancel()}
        pending.put(None)
        out["code"] = code_number(call.code())
        out["after"] = stub.Get(Request(text="after"), timeout=30).text
    elif scenario == "big":
        payload = bytes((i * 31) & 0xFF for i in range(3 * 1024 * 1024))
        reply = stub.Get(Request(payload=payload, text="big"), timeout=120)
        out = {"length": len(reply.payload), "text": reply.text,
               "same": hashlib.sha256(reply.payload).digest() == hashlib.sha256(payload).digest()}
        try:
            stub.Get(Request(payload=b"\x07" * (5 * 1024 * 1024)), timeout=120)
            out["over"] = {"code": 0}
        except grpc.RpcError as e:
            out["over"] = error(e)
        out["after"] = stub.Get(Request(text="still fine"), timeout=30).text
    elif scenario == "errors":
        message = sys.argv[3]
        results = []
        for code in (3, 5, 9, 13, 16):
            try:
                stub.Get(Request(text=message, fail_with_code=code), timeout=30)
                results.append({"code": 0})
            except grpc.RpcError as e:
                results.append(error(e))
        out = {"results": results}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))
    channel.close()


if __name__ == "__main__":
    main()
