"""grpcio client against a Faultline server: `grpcio_client.py PORT SCENARIO`.

Prints one JSON object describing what grpcio observed; the Swift test asserts on it.
"""
import hashlib
import json
import sys
import threading
import time
import urllib.parse

import grpc

from echo_common import metadata_dict, path


def identity(b):
    return b


def error(e):
    return {"code": e.code().value[0], "details": e.details(),
            "trailing": metadata_dict(e.trailing_metadata())}


def main():
    port, scenario = int(sys.argv[1]), sys.argv[2]
    options = [("grpc.max_receive_message_length", 4 * 1024 * 1024),
               ("grpc.enable_retries", 0)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    grpc.channel_ready_future(channel).result(timeout=10)
    get = channel.unary_unary(path("Get"))
    expand = channel.unary_stream(path("Expand"))
    collect = channel.stream_unary(path("Collect"))
    update = channel.stream_stream(path("Update"))
    out = {}

    if scenario == "unary":
        response, call = get.with_call(b"hello from grpcio", metadata=[("x-echo-who", "grpcio"),
                                                                      ("x-echo-raw-bin", b"\x00\xff\x10")])
        out = {"response": response.decode(), "initial": metadata_dict(call.initial_metadata()),
               "trailing": metadata_dict(call.trailing_metadata()), "code": call.code().value[0]}
    elif scenario == "server_streaming":
        out = {"responses": [r.decode() for r in expand(b"s", metadata=[("x-count", "4")])]}
    elif scenario == "client_streaming":
        out = {"response": collect(iter([b"a", b"b", b"c", b""])).decode()}
    elif scenario == "bidi":
        out = {"responses": [r.decode() for r in update(iter([f"m{i}".encode() for i in range(50)]))]}
    elif scenario == "deadline":
        try:
            get(b"x", timeout=0.3, metadata=[("x-delay-ms", "60000")])
            out = {"code": 0}
        except grpc.RpcError as e:
            out = error(e)
    elif scenario == "cancel":
        future = get.future(b"x", metadata=[("x-delay-ms", "60000")])
        # Wait until the server has the call (the Swift side checks its handler was cancelled).
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.5)
        out = {"cancelled": future.cancel()}
        # The channel stays usable.
        out["after"] = get(b"after").decode()
    elif scenario == "big":
        payload = bytes((i * 31) & 0xFF for i in range(3 * 1024 * 1024))
        response = get(payload, timeout=60)
        out = {"length": len(response), "same": hashlib.sha256(response).hexdigest() == hashlib.sha256(payload).hexdigest()}
        try:
            get(b"\x07" * (5 * 1024 * 1024), timeout=60)
            out["over"] = {"code": 0}
        except grpc.RpcError as e:
            out["over"] = error(e)
        out["after"] = get(b"still fine").decode()
    elif scenario == "errors":
        message = "100% kaputt: Grüße, 日本語 🚀"
        results = []
        for code in (3, 5, 9, 13, 16):
            try:
                get(b"x", metadata=[("x-fail-code", str(code)),
                                     ("x-fail-message", urllib.parse.quote(message, safe=""))])
                results.append({"code": 0})
            except grpc.RpcError as e:
                results.append(error(e))
        try:
            channel.unary_unary("/faultline.testing.v1.Echo/Missing")(b"x")
            results.append({"code": 0})
        except grpc.RpcError as e:
            results.append(error(e))
        out = {"results": results, "message": message}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))
    channel.close()


if __name__ == "__main__":
    main()
