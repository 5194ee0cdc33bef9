"""The CLI's own HTTP/1.1 and SSE client against a scripted, sometimes hostile server on a real
socket: streams split at every byte, CR/CRLF/LF line ends, dropped connections resumed with
Last-Event-ID, upstream errors mid-stream, oversized lines, problem bodies, HTML error pages,
non-JSON answers and non-HTTP garbage. Each must give the right output and exit code."""
import json
import os
import socketserver
import subprocess
import threading
import time

import pytest


class Script:
    """Per path, a list of responses (raw bytes, or a callable writing to the socket), served in
    order; the request heads received are kept for assertions."""

    def __init__(self):
        self.responses: dict[str, list] = {}
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def add(self, path, *responses):
        self.responses.setdefault(path, []).extend(responses)

    def next(self, path):
        with self.lock:
            queue = self.responses.get(path) or []
            return queue.pop(0) if queue else http(404, b'{"code":"route.not_found","detail":"unscripted"}', "application/problem+json")


def http(status, body: bytes, content_type="application/json", reason="X") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


def sse_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


@pytest.fixture
def server():
    script = Script()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode()
            request_line, *header_lines = head.split("\r\n")
            path = request_line.split(" ")[1].split("?")[0]
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
            with script.lock:
                script.requests.append((request_line, headers))
            response = script.next(path)
            try:
                if callable(response):
                    response(self.request)
                else:
                    self.request.sendall(response)
            except OSError:
                pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", 0), Handler) as srv:
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        script.url = f"http://127.0.0.1:{srv.server_address[1]}"
        yield script
        srv.shutdown()


def cli(faultline, server, *args, timeout=120):
    env = dict(os.environ, FAULTLINE_URL=server.url, FAULTLINE_TOKEN="fl_test")
    return subprocess.run([str(faultline), *args], capture_output=True, text=True, env=env, timeout=timeout)


def event(seq, type_="activity-after", name="probe") -> bytes:
    data = json.dumps({"sequence": seq, "type": type_, "payload": {"name": name, "status": "succeeded"}})
    return f"id: {seq}\nevent: event\ndata: {data}\n\n".encode()


STREAM = "/api/v1/executions/exe_1/events/stream"
EXECUTION = "/api/v1/executions/exe_1"


def byte_by_byte(payload: bytes):
    def write(sock):
        sock.sendall(sse_head())
        for i in range(len(payload)):
            sock.sendall(payload[i:i + 1])
            time.sleep(0.0005)
    return write


def test_stream_split_at_every_byte_with_mixed_line_ends(faultline, server):
    body = (b": a comment\r\n"
            b"id: 1\revent: event\rdata: {\"sequence\": 1, \"type\": \"activity-before\",\r\n"
            b"data:  \"payload\": {\"name\": \"a\"}}\r\n\r\n"
            + event(2).replace(b"\n", b"\r\n")
            + b"event: caught_up\ndata: {\"sequence\":2}\n\n"
            + b"unknown: field\nevent: end\ndata: {}\n\n")
    server.add(STREAM, byte_by_byte(body))
    server.add(EXECUTION, http(200, b'{"id":"exe_1","status":"deviated","score":0}'))
    out = cli(faultline, server, "execution", "watch", "exe_1", "--json")
    assert out.returncode == 10, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    events = [line for line in lines if line["event"] == "event"]
    assert [(e["id"], e["data"]["sequence"]) for e in events] == [("1", 1), ("2", 2)]
    assert events[0]["data"]["payload"] == {"name": "a"}  # two data lines joined by a newline
    assert lines[-1]["event"] == "result" and lines[-1]["data"]["status"] == "deviated"


def test_dropped_stream_and_upstream_error_resume_after_the_last_event(faultline, server):
    server.add(STREAM,
               sse_head() + event(1) + event(2) + b"id: 3\nevent: ev",  # cut mid-event
               sse_head() + b'event: error\ndata: {"code":"rpc.unavailable"}\n\n',
               http(503, b'{"code":"rpc.unavailable","detail":"restarting"}', "application/problem+json"),
               sse_head() + event(3) + b"event: end\ndata: {}\n\n")
    server.add(EXECUTION, http(200, b'{"id":"exe_1","status":"completed","score":1}'))
    out = cli(faultline, server, "execution", "watch", "exe_1")
    assert out.returncode == 0, out.stderr
    streams = [headers for line, headers in server.requests if STREAM in line]
    assert [h.get("last-event-id") for h in streams] == [None, "2", "2", "2"]
    assert out.stdout.count("probe: succeeded") == 3
    assert "reconnecting" in out.stderr


def test_a_line_without_end_is_refused_not_buffered_forever(faultline, server):
    server.add(STREAM, sse_head() + b"data: " + b"x" * (5 << 20))
    out = cli(faultline, server, "execution", "watch", "exe_1")
    assert out.returncode == 76, out.stderr
    assert "exceeds" in out.stderr


def test_problem_details_are_printed_with_their_items(faultline, server):
    problem = {"type": "about:blank", "title": "Bad Request", "status": 400, "code": "experiment.invalid",
               "detail": "the experiment is not valid", "request_id": "req-1",
               "problems": [{"path": "$.method", "severity": "error", "code": "method.missing", "message": "a method is required"}]}
    server.add("/api/v1/experiments", http(400, json.dumps(problem).encode(), "application/problem+json"))
    out = cli(faultline, server, "experiment", "list")
    assert out.returncode == 65
    assert "HTTP 400, experiment.invalid" in out.stderr
    assert "error at $.method: a method is required [method.missing]" in out.stderr
    assert "request id: req-1" in out.stderr


def test_non_problem_errors_and_garbage(faultline, server):
    server.add("/api/v1/experiments/exp_1", http(502, b"<html>\n<body>upstream down</body></html>", "text/html", "Bad Gateway"))
    out = cli(faultline, server, "experiment", "show", "exp_1")
    assert out.returncode == 65 and "HTTP 502" in out.stderr and "<html>" in out.stderr and "upstream" not in out.stderr

    server.add("/api/v1/experiments/exp_2", http(200, b"[1, 2"))
    out = cli(faultline, server, "experiment", "show", "exp_2")
    assert out.returncode == 76 and "not a JSON object" in out.stderr

    server.add("/api/v1/experiments/exp_3", b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    out = cli(faultline, server, "experiment", "show", "exp_3")
    assert out.returncode == 76, out.stderr


def test_ids_and_queries_are_percent_encoded(faultline, server):
    server.add("/api/v1/experiments/a%2Fb%3Fc", http(200, b'{"id":"a/b?c","title":"t"}'))
    out = cli(faultline, server, "experiment", "show", "a/b?c", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["id"] == "a/b?c"
    line, headers = server.requests[-1]
    assert line == "GET /api/v1/experiments/a%2Fb%3Fc HTTP/1.1" and headers["authorization"] == "Bearer fl_test"
