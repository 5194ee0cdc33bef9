"""The Python protobuf and gRPC modules for protos/faultline/testing/v1/echo.proto.

Compiled at run time with grpcio-tools into a temporary directory, so the Python peers always
serve exactly the contract in protos/ and nothing generated is committed.
"""

import atexit
import importlib
import pathlib
import shutil
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO = "faultline/testing/v1/echo.proto"
METHOD = "/faultline.testing.v1.Echo/Get"


def load():
    """Returns (echo_pb2, echo_pb2_grpc), compiled from the repository's protos/."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="faultline-echo-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{REPO / 'protos'}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(REPO / "protos" / PROTO),
    ])
    if status != 0:
        raise SystemExit(f"grpc_tools.protoc failed on {PROTO} (exit {status})")
    sys.path.insert(0, out)
    module = PROTO.removesuffix(".proto").replace("/", ".")
    return importlib.import_module(module + "_pb2"), importlib.import_module(module + "_pb2_grpc")
