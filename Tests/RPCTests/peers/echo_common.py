"""Shared by the grpcio peers: the Echo service's paths and status-code helpers.

The peers use grpcio's *generic* API with raw bytes (no serializers, no generated stubs), so
they exercise the wire format only. Behaviour is driven by request metadata, exactly like the
Swift test service: x-fail-code/x-fail-message, x-delay-ms, x-count, x-echo-* (echoed back).
"""
import grpc

SERVICE = "faultline.testing.v1.Echo"


def path(method):
    return f"/{SERVICE}/{method}"


def status_code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def metadata_dict(pairs):
    out = {}
    for key, value in pairs or ():
        if isinstance(value, bytes):
            value = "bin:" + value.hex()
        out.setdefault(key, []).append(value)
    return out
