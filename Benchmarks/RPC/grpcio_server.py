"""The Python grpcio peer of the RPC benchmark: serves faultline.testing.v1.Echo/Get.

Binds 127.0.0.1 (port 0 picks a free one), prints `port N` once it listens, and serves until
SIGTERM or SIGINT. `--mode sync` is the classic thread-pool server, `--mode aio` is grpc.aio.
"""

import argparse
import asyncio
import signal
import sys
import threading
from concurrent import futures

import grpc

import echo_stubs


def options(args):
    # The same HTTP/2 receive window and maximum frame size every server of the run is given.
    # grpcio sizes its windows with BDP probing unless told otherwise.
    return [
        ("grpc.http2.max_frame_size", args.max_frame),
        ("grpc.http2.lookahead_bytes", args.window),
        ("grpc.http2.bdp_probe", 0),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["sync", "aio"], default="sync")
    parser.add_argument("--threads", type=int, default=8, help="worker threads of the sync server")
    parser.add_argument("--window", type=int, default=4 * 1024 * 1024, help="HTTP/2 receive window, bytes")
    parser.add_argument("--max-frame", type=int, default=4 * 1024 * 1024, help="HTTP/2 max frame size, bytes")
    args = parser.parse_args()
    pb2, pb2_grpc = echo_stubs.load()

    def get(request, context):
        return pb2.EchoResponse(payload=request.payload)

    if args.mode == "sync":
        serve_sync(args, pb2, pb2_grpc, get)
    else:
        asyncio.run(serve_aio(args, pb2, pb2_grpc, get))


def servicer(pb2_grpc, get):
    class Echo(pb2_grpc.EchoServicer):
        Get = staticmethod(get)

    return Echo()


def serve_sync(args, pb2, pb2_grpc, get):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.threads), options=options(args))
    pb2_grpc.add_EchoServicer_to_server(servicer(pb2_grpc, get), server)
    port = bound_port(server.add_insecure_port(f"127.0.0.1:{args.port}"), args.port)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"port {port}", flush=True)
    stop.wait()
    server.stop(grace=1).wait()


async def serve_aio(args, pb2, pb2_grpc, get):
    async def aio_get(request, context):
        return get(request, context)

    server = grpc.aio.server(options=options(args))
    pb2_grpc.add_EchoServicer_to_server(servicer(pb2_grpc, aio_get), server)
    port = bound_port(server.add_insecure_port(f"127.0.0.1:{args.port}"), args.port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"port {port}", flush=True)
    await stop.wait()
    await server.stop(grace=1)


def bound_port(port, requested):
    # grpcio returns 0 instead of raising when it cannot bind.
    if port == 0:
        sys.exit(f"grpcio could not bind 127.0.0.1:{requested}")
    return port


if __name__ == "__main__":
    main()
