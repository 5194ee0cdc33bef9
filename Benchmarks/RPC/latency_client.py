"""The closed-loop latency check of the RPC benchmark: a grpc.aio client on one channel keeps a
fixed number of Echo/Get calls in flight, checks every reply, and prints one JSON line with
calls/s and p50/p99 latency in µs. A Python client cannot saturate a fast server: this measures
what a real client sees at low concurrency, not capacity (h2load does that).
"""

import argparse
import asyncio
import json
import math
import sys
import time

import grpc

import echo_stubs


async def measure(args, pb2):
    payload = bytes(i % 251 for i in range(args.payload))
    request = pb2.EchoRequest(payload=payload)
    latencies = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        get = channel.unary_unary(echo_stubs.METHOD,
                                  request_serializer=pb2.EchoRequest.SerializeToString,
                                  response_deserializer=pb2.EchoResponse.FromString)
        start = time.perf_counter()
        measure_from = start + args.warmup
        stop_at = measure_from + args.duration

        async def worker():
            while (sent := time.perf_counter()) < stop_at:
                reply = await get(request, timeout=10)
                done = time.perf_counter()
                if reply.payload != payload:
                    sys.exit(f"server {args.server} echoed {len(reply.payload)} bytes that differ from the "
                             f"{len(payload)} sent")
                if sent >= measure_from:
                    latencies.append(done - sent)

        await asyncio.gather(*(worker() for _ in range(args.in_flight)))
    latencies.sort()

    def pct(fraction):
        return round(latencies[max(0, math.ceil(fraction * len(latencies)) - 1)] * 1e6)

    return {"server": args.server, "payload": args.payload, "in_flight": args.in_flight,
            "duration": args.duration, "warmup": args.warmup, "calls": len(latencies),
            "calls_per_s": len(latencies) / args.duration, "p50_us": pct(0.50), "p99_us": pct(0.99)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", default="server", help="name for the output")
    parser.add_argument("--payload", type=int, default=16)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    args = parser.parse_args()
    pb2, _ = echo_stubs.load()
    print(json.dumps(asyncio.run(measure(args, pb2))))


if __name__ == "__main__":
    main()
