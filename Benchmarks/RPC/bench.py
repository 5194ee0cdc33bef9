"""Helpers of Benchmarks/RPC/run: request bodies, the checks of one server, parsing h2load, the table.

Kept apart from the bash driver so every number the table prints comes from one parser.
"""

import argparse
import json
import math
import re
import statistics
import sys


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def echo_message(payload_size):
    """EchoRequest{payload} and EchoResponse{payload} encode alike: field 1, bytes."""
    if payload_size == 0:
        return b""
    return b"\x0a" + varint(payload_size) + bytes(i % 251 for i in range(payload_size))


def grpc_frame(message):
    return b"\x00" + len(message).to_bytes(4, "big") + message


def cmd_body(args):
    """Writes the framed request; prints the size of the framed reply the server must send."""
    message = echo_message(args.payload)
    with open(args.path, "wb") as f:
        f.write(grpc_frame(message))
    print(len(grpc_frame(message)))


def cmd_check_call(args):
    """Reads `nghttp -v` output of one call: requires :status 200 and grpc-status 0, and prints
    the HTTP/2 settings the server advertised as `key=value` words."""
    text = open(args.path, "rb").read().decode("utf-8", "replace")
    status = re.search(r"recv \(stream_id=\d+\) :status: (\d+)", text)
    grpc_status = re.search(r"recv \(stream_id=\d+\) grpc-status: (\d+)", text)
    if not status or status.group(1) != "200":
        sys.exit(f":status is {status.group(1) if status else 'missing'}, expected 200")
    if not grpc_status or grpc_status.group(1) != "0":
        message = re.search(r"recv \(stream_id=\d+\) grpc-message: (.*)", text)
        sys.exit(f"grpc-status is {grpc_status.group(1) if grpc_status else 'missing'}, expected 0"
                 + (f" ({message.group(1)})" if message else ""))
    # The server's first non-ACK SETTINGS frame, and its WINDOW_UPDATE on stream 0.
    settings = {"SETTINGS_INITIAL_WINDOW_SIZE": 65535, "SETTINGS_MAX_FRAME_SIZE": 16384,
                "SETTINGS_MAX_CONCURRENT_STREAMS": "unlimited"}
    frame = re.search(r"recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>\n\s+\(niv=\d+\)\n((?:\s+\[.*\]\n)*)", text)
    if frame:
        for name, value in re.findall(r"\[(SETTINGS_\w+)\(0x[0-9a-f]+\):(\d+)\]", frame.group(1)):
            settings[name] = int(value)
    # The first connection-level WINDOW_UPDATE sizes the connection window (later ones, and some
    # of the first, only replenish what the request consumed).
    update = re.search(
        r"recv WINDOW_UPDATE frame <length=4, flags=0x00, stream_id=0>\n\s+\(window_size_increment=(\d+)\)", text)
    increment = int(update.group(1)) if update else 0
    print(f"stream_window={settings['SETTINGS_INITIAL_WINDOW_SIZE']} "
          f"connection_window~{65535 + increment} "
          f"max_frame={settings['SETTINGS_MAX_FRAME_SIZE']} "
          f"max_streams={settings['SETTINGS_MAX_CONCURRENT_STREAMS']}")


def h2load_summary(text):
    result = {}
    finished = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout", text)
    data = re.search(r"traffic: .*?, .*? \((\d+)\) data", text)
    if not (finished and requests and data):
        sys.exit("h2load printed no summary:\n" + text[-2000:])
    result["rps"] = float(finished.group(1))
    result["total"], _, result["done"], result["succeeded"], result["failed"], result["errored"], \
        result["timeout"] = (int(g) for g in requests.groups())
    result["data"] = int(data.group(1))
    return result


def cmd_check_bytes(args):
    """Requires `h2load -n N` to have N successes and exactly N framed replies of data."""
    summary = h2load_summary(open(args.path).read())
    expected = args.requests * args.reply_size
    if summary["succeeded"] != args.requests:
        sys.exit(f"{summary['succeeded']} of {args.requests} requests succeeded")
    if summary["data"] != expected:
        sys.exit(f"{summary['data']} data bytes, expected {args.requests} x {args.reply_size} = {expected}")
    print(f"{summary['succeeded']} succeeded, {summary['data']} data bytes = {args.requests} x {args.reply_size}")


def percentile(sorted_values, fraction):
    """Nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def cmd_timed(args):
    """One timed h2load run -> one JSON line: req/s, p50/p99 (µs, status-200 rows of the log),
    server CPU µs per request (CPU rate over the sampled window / req/s)."""
    summary = h2load_summary(open(args.output).read())
    latencies = []
    with open(args.log) as log:
        for line in log:
            columns = line.split()
            if len(columns) >= 3 and columns[1] == "200":
                latencies.append(int(columns[2]))
    latencies.sort()
    if not latencies:
        sys.exit(f"no status-200 rows in {args.log}")
    cpu_seconds = args.cpu_ticks / args.clock_ticks
    row = {
        "server": args.server, "payload": args.payload, "run": args.run,
        "rps": summary["rps"], "succeeded": summary["succeeded"],
        "failed": summary["failed"] + summary["errored"] + summary["timeout"],
        "p50_us": percentile(latencies, 0.50), "p99_us": percentile(latencies, 0.99),
        "cpu_us_per_req": (cpu_seconds / args.cpu_wall) / summary["rps"] * 1e6 if summary["rps"] else None,
        "client_cpu_pct": args.client_cpu_ticks / args.clock_ticks / args.cpu_wall * 100,
    }
    print(json.dumps(row))


def median_or_none(values):
    return statistics.median(values) if values else None


def ratio(ours, theirs):
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else "n/a"


def payload_name(size):
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def fmt(value, spec=",.0f"):
    return "-" if value is None else format(value, spec)


def cmd_table(args):
    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    latency = [json.loads(line) for line in open(args.latency) if line.strip()]
    servers = args.servers.split()
    payloads = [int(p) for p in args.payloads.split()]
    status = dict(item.split("=", 1) for item in args.status)

    medians = {}
    for server in servers:
        for payload in payloads:
            rows = [r for r in runs if r["server"] == server and r["payload"] == payload]
            if rows:
                medians[server, payload] = {
                    key: median_or_none([r[key] for r in rows if r[key] is not None])
                    for key in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "client_cpu_pct")
                } | {"runs": [r["rps"] for r in rows], "failed": sum(r["failed"] for r in rows)}

    print(f"\nh2load -c {args.connections} -m {args.streams} -t 1, median of {args.run_count} x {args.duration} s "
          f"(after --warm-up-time {args.warmup} s), servers interleaved")
    header = (f"{'server':<12} {'payload':>8} {'req/s':>9} {'p50 µs':>9} {'p99 µs':>9} {'CPU µs/req':>11}"
              f" {'h2load CPU':>10}  runs (req/s)")
    print(header)
    print("-" * len(header))
    for server in servers:
        for payload in payloads:
            m = medians.get((server, payload))
            if m is None:
                print(f"{server:<12} {payload_name(payload):>8}  {status.get(server, 'not measured')}")
                continue
            runs_text = " ".join(fmt(r) for r in m["runs"])
            failed = f"  ({m['failed']} failed)" if m["failed"] else ""
            print(f"{server:<12} {payload_name(payload):>8} {fmt(m['rps']):>9} {fmt(m['p50_us']):>9} "
                  f"{fmt(m['p99_us']):>9} {fmt(m['cpu_us_per_req'], '.1f'):>11}"
                  f" {fmt(m['client_cpu_pct'], '.0f') + '%':>10}  {runs_text}{failed}")

    print("\nFaultline / peer (throughput: higher is better; p99 and CPU per request: lower is better,"
          "\nand CPU per request is the figure a busy machine disturbs least)")
    for peer in [s for s in servers if s != "faultline"]:
        for payload in payloads:
            ours, theirs = medians.get(("faultline", payload)), medians.get((peer, payload))
            if ours and theirs:
                print(f"  vs {peer:<11} {payload_name(payload):>8}  throughput {ratio(ours['rps'], theirs['rps'])}"
                      f"   p99 {ratio(ours['p99_us'], theirs['p99_us'])}"
                      f"   CPU/req {ratio(ours['cpu_us_per_req'], theirs['cpu_us_per_req'])}")
            else:
                print(f"  vs {peer:<11} {payload_name(payload):>8}  n/a (faultline: {status.get('faultline', '?')})")

    if latency:
        print(f"\nclosed loop: grpc.aio client, {latency[0]['in_flight']} calls in flight, one connection, "
              f"{latency[0]['duration']} s after {latency[0]['warmup']} s warm-up")
        print(f"{'server':<12} {'payload':>8} {'calls/s':>9} {'p50 µs':>9} {'p99 µs':>9}")
        for row in latency:
            print(f"{row['server']:<12} {payload_name(row['payload']):>8} {fmt(row['calls_per_s']):>9} "
                  f"{fmt(row['p50_us']):>9} {fmt(row['p99_us']):>9}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(required=True)

    p = sub.add_parser("body"); p.set_defaults(func=cmd_body)
    p.add_argument("payload", type=int); p.add_argument("path")

    p = sub.add_parser("check-call"); p.set_defaults(func=cmd_check_call)
    p.add_argument("path")

    p = sub.add_parser("check-bytes"); p.set_defaults(func=cmd_check_bytes)
    p.add_argument("path"); p.add_argument("requests", type=int); p.add_argument("reply_size", type=int)

    p = sub.add_parser("timed"); p.set_defaults(func=cmd_timed)
    for name in ("server", "output", "log"):
        p.add_argument(f"--{name}", required=True)
    for name in ("payload", "run"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--cpu-ticks", type=int, required=True)
    p.add_argument("--client-cpu-ticks", type=int, required=True, help="h2load's CPU in the same window")
    p.add_argument("--clock-ticks", type=int, required=True)
    p.add_argument("--cpu-wall", type=float, required=True, help="seconds between the two CPU samples")

    p = sub.add_parser("table"); p.set_defaults(func=cmd_table)
    for name in ("runs", "latency", "servers", "payloads"):
        p.add_argument(f"--{name}", required=True)
    for name in ("connections", "streams", "run-count", "duration", "warmup"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("status", nargs="*", help="server=why it has no rows")

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
