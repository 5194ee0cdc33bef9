"""Tests of bench.py, the parsers every figure of the RPC benchmark comes from.

    $FAULTLINE_VENV/bin/python -m pytest Benchmarks/RPC
"""

import argparse
import json

import pytest

import bench

NGHTTP_OK = """\
[  0.001] recv SETTINGS frame <length=24, flags=0x00, stream_id=0>
          (niv=4)
          [SETTINGS_INITIAL_WINDOW_SIZE(0x04):262144]
          [SETTINGS_MAX_HEADER_LIST_SIZE(0x06):16384]
          [SETTINGS_MAX_FRAME_SIZE(0x05):16384]
          [SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]
[  0.001] recv WINDOW_UPDATE frame <length=4, flags=0x00, stream_id=0>
          (window_size_increment=983041)
[  0.001] recv SETTINGS frame <length=0, flags=0x01, stream_id=0>
          ; ACK
          (niv=0)
[  0.001] recv (stream_id=13) :status: 200
[  0.001] recv (stream_id=13) content-type: application/grpc
[  0.001] recv (stream_id=13) grpc-status: 0
"""

H2LOAD = """\
finished in {seconds}, {rps} req/s, 511.23KB/s
requests: {n} total, {n} started, {n} done, {ok} succeeded, {bad} failed, 0 errored, 0 timeout
status codes: {n} 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 106.64KB (109198) total, 4.09KB (4192) headers (space savings 94.61%), 46.00KB ({data}) data
"""


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    path.write_text(text) if mode == "w" else path.write_bytes(text)
    return str(path)


def test_body_is_one_uncompressed_grpc_frame(tmp_path, capsys):
    for payload, reply in [(16, 23), (127, 134), (128, 136), (65536, 65545)]:
        path = tmp_path / f"body-{payload}"
        bench.cmd_body(argparse.Namespace(payload=payload, path=str(path)))
        body = path.read_bytes()
        assert int(capsys.readouterr().out) == reply == len(body)
        assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
        assert body[5] == 0x0A  # field 1, length-delimited


def test_check_call_reports_the_advertised_settings(tmp_path, capsys):
    bench.cmd_check_call(argparse.Namespace(path=write(tmp_path, "ok.log", NGHTTP_OK)))
    assert capsys.readouterr().out.split() == [
        "stream_window=262144", "connection_window~1048576", "max_frame=16384", "max_streams=100"]


def test_check_call_defaults_when_the_server_sends_no_settings(tmp_path, capsys):
    text = "\n".join(line for line in NGHTTP_OK.splitlines() if "SETTINGS_" not in line and "increment" not in line)
    bench.cmd_check_call(argparse.Namespace(path=write(tmp_path, "bare.log", text)))
    assert "stream_window=65535" in capsys.readouterr().out


@pytest.mark.parametrize("replace, reason", [
    (("grpc-status: 0", "grpc-status: 12\n[  0.001] recv (stream_id=13) grpc-message: no such method"),
     "grpc-status is 12, expected 0 (no such method)"),
    (("grpc-status: 0", "x-other: 1"), "grpc-status is missing"),
    ((":status: 200", ":status: 415"), ":status is 415"),
])
def test_check_call_refuses_anything_but_ok(tmp_path, replace, reason):
    text = NGHTTP_OK.replace(*replace)
    with pytest.raises(SystemExit) as exit:
        bench.cmd_check_call(argparse.Namespace(path=write(tmp_path, "bad.log", text)))
    assert reason in str(exit.value)


def test_check_call_reads_binary_payload_bytes(tmp_path, capsys):
    raw = NGHTTP_OK.encode().replace(b"grpc-status", b"\x00\xff\x0a\x10\xfe" + b"grpc-status", 0)
    bench.cmd_check_call(argparse.Namespace(path=write(tmp_path, "bin.log", raw, mode="b")))
    assert "max_frame=16384" in capsys.readouterr().out


def test_check_bytes_requires_every_reply_in_full(tmp_path, capsys):
    ok = H2LOAD.format(seconds="208.59ms", rps="9818.16", n=2048, ok=2048, bad=0, data=2048 * 23)
    bench.cmd_check_bytes(argparse.Namespace(path=write(tmp_path, "ok", ok), requests=2048, reply_size=23))
    assert "2048 succeeded" in capsys.readouterr().out

    # The trap benchmarking.md describes: HTTP 200 for every request, no gRPC data at all.
    empty = H2LOAD.format(seconds="1.2s", rps="1000", n=2048, ok=2048, bad=0, data=0)
    with pytest.raises(SystemExit, match="0 data bytes, expected 2048 x 23"):
        bench.cmd_check_bytes(argparse.Namespace(path=write(tmp_path, "empty", empty), requests=2048, reply_size=23))

    short = H2LOAD.format(seconds="1.2s", rps="1000", n=2048, ok=1000, bad=1048, data=1000 * 23)
    with pytest.raises(SystemExit, match="1000 of 2048 requests succeeded"):
        bench.cmd_check_bytes(argparse.Namespace(path=write(tmp_path, "short", short), requests=2048, reply_size=23))

    with pytest.raises(SystemExit, match="no summary"):
        bench.cmd_check_bytes(argparse.Namespace(path=write(tmp_path, "none", "connect failed\n"),
                                                 requests=2048, reply_size=23))


def test_timed_run_uses_status_200_rows_and_cpu_rate(tmp_path, capsys):
    output = write(tmp_path, "out", H2LOAD.format(seconds="12.00s", rps="1000.00", n=10000, ok=10000, bad=0,
                                                  data=230000))
    rows = [f"1795635766564731\t200\t{us}" for us in range(1, 101)] + ["1795635766564731\t503\t999999"]
    log = write(tmp_path, "log", "\n".join(rows) + "\n")
    bench.cmd_timed(argparse.Namespace(server="s", payload=16, run=1, output=output, log=log,
                                       cpu_ticks=45, client_cpu_ticks=90, clock_ticks=100, cpu_wall=9.0))
    row = json.loads(capsys.readouterr().out)
    assert (row["p50_us"], row["p99_us"]) == (50, 99)  # the 503 row is not a latency
    assert row["cpu_us_per_req"] == pytest.approx(50.0)  # 0.45 s / 9 s = 5% of a core at 1000 req/s
    assert row["client_cpu_pct"] == pytest.approx(10.0)


def test_timed_run_without_successes_fails(tmp_path):
    output = write(tmp_path, "out", H2LOAD.format(seconds="12.00s", rps="0.00", n=0, ok=0, bad=0, data=0))
    log = write(tmp_path, "log", "1795635766564731\t415\t100\n")
    with pytest.raises(SystemExit, match="no status-200 rows"):
        bench.cmd_timed(argparse.Namespace(server="s", payload=16, run=1, output=output, log=log,
                                           cpu_ticks=0, client_cpu_ticks=0, clock_ticks=100, cpu_wall=9.0))


def test_percentile_is_nearest_rank():
    values = list(range(1, 11))
    assert [bench.percentile(values, f) for f in (0.5, 0.9, 0.99, 1.0)] == [5, 9, 10, 10]
    assert bench.percentile([7], 0.99) == 7


def test_table_gives_medians_ratios_and_why_a_server_is_missing(tmp_path, capsys):
    def run(server, rps, p99):
        return json.dumps({"server": server, "payload": 16, "run": 1, "rps": rps, "succeeded": 1, "failed": 0,
                           "p50_us": 10, "p99_us": p99, "cpu_us_per_req": 5.0, "client_cpu_pct": 10.0})

    runs = write(tmp_path, "runs", "\n".join([run("faultline", r, p) for r, p in [(300, 10), (100, 30), (200, 20)]]
                                             + [run("grpc-swift", 100, 40)]) + "\n")
    latency = write(tmp_path, "latency", "")
    bench.cmd_table(argparse.Namespace(runs=runs, latency=latency, servers="faultline grpc-swift grpcio",
                                       payloads="16", connections=8, streams=32, run_count=3, duration=10,
                                       warmup=2, status=["grpcio=not built"]))
    out = capsys.readouterr().out
    assert "vs grpc-swift      16 B  throughput 2.00x   p99 0.50x   CPU/req 1.00x" in out
    assert "grpcio           16 B  not built" in out
    assert "300 100 200" in out
