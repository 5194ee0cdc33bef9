"""Shared by the generated-stub peers: compiles the Echo proto with grpcio-tools at test time.

Unlike the raw-bytes peers, these use the messages and stubs protoc generates from the very
proto files the Swift contract is generated from, so field numbers and types are checked too.
The stubs go to a fresh directory under $FAULTLINE_TEST_TMP (or the system temp dir) and are
removed when the process exits.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

PROTOS = Path(__file__).resolve().parents[3] / "protos"
ECHO_SERVICE = "faultline.testing.v1.Echo"
# Test-only control calls (raw bytes) that let the other side drive the peer's health status.
CONTROL_SERVICE = "faultline.testing.v1.Control"


def compile_echo():
    """Runs `python -m grpc_tools.protoc` on echo.proto; returns (echo_pb2, echo_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="faultline-stubs-", dir=os.environ.get("FAULTLINE_TEST_TMP") or None)
    atexit.register(shutil.rmtree, out, True)
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}",
         f"--grpc_python_out={out}", str(PROTOS / "faultline/testing/v1/echo.proto")],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"grpc_tools.protoc failed ({result.returncode}): {result.stderr}")
    sys.path.insert(0, out)
    from faultline.testing.v1 import echo_pb2, echo_pb2_grpc
    return echo_pb2, echo_pb2_grpc


def code_number(code):
    return code.value[0]
