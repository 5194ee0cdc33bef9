"""The integration controls under real `chaos run` / `chaos validate` against a local HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import pytest

from runnerside import LocalHTTPServer

from chaosfaultline.integrations import webhook

CHAOS = Path(sys.executable).parent / "chaos"
SECRET = "s3cr3t-value-for-tests"


class Peer:
    """A local HTTP server: /ok answers 200 when the bearer secret matches, /down 503, /flaky
    200 twice then 503; /hook records POSTs."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.hits: dict[str, int] = {}
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: bytes = b"healthy") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                peer.hits[self.path] = peer.hits.get(self.path, 0) + 1
                if self.path == "/ok":
                    ok = self.headers.get("Authorization") == f"Bearer {SECRET}"
                    self.answer(200 if ok else 401)
                elif self.path == "/flaky":
                    self.answer(200 if peer.hits[self.path] <= 2 else 503)
                else:
                    self.answer(503)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer.posts.append(({k: v for k, v in self.headers.items()}, body))
                peer.paths.append(f"{self.command} {self.path}")
                if self.path.endswith("/chat.postMessage"):
                    self.answer(200, b'{"ok": true}')
                else:
                    self.answer(204, b"")

            do_PUT = do_POST

        self.http = LocalHTTPServer(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.close()


def probe(url: str) -> dict[str, Any]:
    return {"url": url, "method": "GET", "headers": {}, "secret_headers": {"Authorization": {"env": "FL_TOKEN"}},
            "body": "", "timeout": 5.0, "expected_status": [], "expected_body_regex": "healthy"}


def experiment(controls: list[dict[str, Any]], sleep: float = 0) -> dict[str, Any]:
    return {
        "title": "integration", "description": "d",
        "controls": controls,
        "method": [{"type": "action", "name": "wait",
                    "provider": {"type": "process", "path": "sleep", "arguments": str(sleep)}}],
    }


def chaos(tmp: Path, command: str, document: dict[str, Any], env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    path = tmp / "experiment.json"
    path.write_text(json.dumps(document))
    journal = tmp / "journal.json"
    log = tmp / "chaos.log"
    args = [str(CHAOS), "--no-version-check", "--log-file", str(log), command]
    if command == "run":
        args += ["--journal-path", str(journal)]
    full_env = {**os.environ, "FL_TOKEN": f"Bearer {SECRET}", **(env or {})}
    result = subprocess.run(args + [str(path)], cwd=tmp, env=full_env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr + (log.read_text() if log.exists() else "")
    return result.returncode, json.loads(journal.read_text()) if journal.exists() else {}, output


def control(name: str, module: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "provider": {"type": "python", "module": module, "arguments": arguments}}


# MARK: signatures


def test_signature_verifies_and_rejects_tampering_staleness_and_other_keys() -> None:
    key, body = b"k" * 32, b'{"type":"run-started"}'
    now = int(time.time())
    header = webhook.sign(key, body, now)
    assert webhook.verify(key, body, header, now=now)
    assert not webhook.verify(key, body + b" ", header, now=now)
    assert not webhook.verify(b"other", body, header, now=now)
    assert not webhook.verify(key, body, header, now=now + 301)  # replayed later
    assert not webhook.verify(key, body, header.replace(f"t={now}", f"t={now + 1}"), now=now)
    for malformed in ("", "t=1", "v1=ab", "t=x,v1=ab", "garbage"):
        assert not webhook.verify(key, body, malformed, now=now)


# MARK: real runs


def test_precheck_passes_with_the_secret_header(peer: Peer, tmp_path: Path) -> None:
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("pre", "chaosfaultline.integrations.precheck", {"probe": probe(peer.url + "/ok")})]))
    assert journal["status"] == "completed", output
    assert peer.hits["/ok"] == 1
    assert SECRET not in output


def test_precheck_failure_stops_the_run_before_any_activity(peer: Peer, tmp_path: Path) -> None:
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("pre", "chaosfaultline.integrations.precheck", {"probe": probe(peer.url + "/down")})]))
    assert journal.get("status") != "completed", output
    assert journal.get("run", []) == [], output
    assert "pre-check failed" in output


def test_safeguard_interrupts_a_run_after_consecutive_failures(peer: Peer, tmp_path: Path) -> None:
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("guard", "chaosfaultline.integrations.safeguard",
                {"probe": {**probe(peer.url + "/flaky"), "secret_headers": {}}, "interval": 0.1, "failure_threshold": 2})],
        sleep=60))
    assert journal.get("status") != "completed", output
    assert "safeguard tripped after 2 failure(s)" in output
    assert peer.hits["/flaky"] >= 4


def test_webhook_posts_signed_events_without_the_key(peer: Peer, tmp_path: Path) -> None:
    key = "webhook-signing-key-xyz"
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("hook", "chaosfaultline.integrations.webhook",
                {"url": peer.url + "/hook", "signing_key": {"env": "FL_HOOK_KEY"}, "events": ["run-started", "run-finished"],
                 "timeout": 5.0, "integration": "hook"})]), env={"FL_HOOK_KEY": key})
    assert journal["status"] == "completed", output
    assert [json.loads(body)["type"] for _, body in peer.posts] == ["run-started", "run-finished"]
    for headers, body in peer.posts:
        assert webhook.verify(key.encode(), body, headers[webhook.HEADER])
        assert key.encode() not in body
    assert key not in output


def test_webhook_reads_a_key_from_a_secret_file(peer: Peer, tmp_path: Path) -> None:
    key_file = tmp_path / "hook.key"
    key_file.write_bytes(b"\x00binary-key\xff")
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("hook", "chaosfaultline.integrations.webhook",
                {"url": peer.url + "/hook", "signing_key": {"file_env": "FL_HOOK_KEY_PATH"}, "events": ["run-finished"]})]),
        env={"FL_HOOK_KEY_PATH": str(key_file)})
    assert journal["status"] == "completed", output
    (headers, body), = peer.posts
    assert webhook.verify(b"\x00binary-key\xff", body, headers[webhook.HEADER])


def test_slack_posts_start_and_end_with_the_token_from_the_environment(peer: Peer, tmp_path: Path) -> None:
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("slack", "chaosfaultline.integrations.slack",
                {"channel": "#chaos", "token": {"env": "FL_SLACK"}, "events": ["run-started", "run-finished"],
                 "api_url": peer.url + "/api"})]), env={"FL_SLACK": "xoxb-canary"})
    assert journal["status"] == "completed", output
    assert peer.paths == ["POST /api/chat.postMessage"] * 2
    for headers, body in peer.posts:
        assert headers["Authorization"] == "Bearer xoxb-canary"
        assert json.loads(body)["channel"] == "#chaos"
    assert "xoxb-canary" not in output


def test_prometheus_pushes_the_run_metrics(peer: Peer, tmp_path: Path) -> None:
    code, journal, output = chaos(tmp_path, "run", experiment([
        control("metrics", "chaosfaultline.integrations.prometheus",
                {"pushgateway_url": peer.url, "job": "chaos runs", "labels": {"team": 'pay"ments'}})]))
    assert journal["status"] == "completed", output
    assert peer.paths == ["PUT /metrics/job/chaos%20runs"]
    text = peer.posts[0][1].decode()
    assert 'faultline_run_completed{team="pay\\"ments"} 1.0' in text
    assert 'faultline_run_activities{team="pay\\"ments"} 1.0' in text
    assert "# TYPE faultline_run_duration_seconds gauge" in text


# MARK: validate


@pytest.mark.parametrize("module,arguments,problem", [
    ("chaosfaultline.integrations.precheck", {"probe": {"url": "ftp://x"}}, "probe.url"),
    ("chaosfaultline.integrations.precheck", {"probe": {"url": "http://x", "secret_headers": {"A": "inline-secret"}}}, "secret reference"),
    ("chaosfaultline.integrations.safeguard", {"probe": {"url": "http://x"}, "failure_threshold": 0}, "failure_threshold"),
    ("chaosfaultline.integrations.webhook", {"url": "http://x", "signing_key": "inline"}, "signing_key"),
    ("chaosfaultline.integrations.webhook", {"url": "http://x", "signing_key": {"env": "K"}, "events": ["nope"]}, "events"),
    ("chaosfaultline.integrations.slack", {"channel": "#c", "token": "xoxb-inline"}, "token"),
    ("chaosfaultline.integrations.prometheus", {"pushgateway_url": "http://x", "labels": {"__name__": "x"}}, "labels"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "otel:4318"}, "endpoint"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://otel:4318?x=1"}, "no query"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "headers": {"X": "a\r\nB: c"}}, "line breaks"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "secret_headers": {"Authorization": "inline"}}, "secret reference"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "headers": {"authorization": "x"},
                                                   "secret_headers": {"Authorization": {"env": "T"}}}, "both in headers"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "service_name": ""}, "service_name"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "resource_attributes": {"k": 1}}, "resource_attributes"),
    ("chaosfaultline.integrations.opentelemetry", {"endpoint": "http://o", "timeout": 0}, "timeout"),
])
def test_validate_rejects_malformed_arguments(tmp_path: Path, module: str, arguments: dict[str, Any], problem: str) -> None:
    code, _, output = chaos(tmp_path, "validate", experiment([control("c", module, arguments)]))
    assert code != 0
    assert problem in output


def test_validate_accepts_every_integration(tmp_path: Path) -> None:
    code, _, output = chaos(tmp_path, "validate", experiment([
        control("pre", "chaosfaultline.integrations.precheck", {"probe": probe("http://127.0.0.1:9/ok")}),
        control("guard", "chaosfaultline.integrations.safeguard", {"probe": probe("http://127.0.0.1:9/ok"), "interval": 1.0,
                                                                   "failure_threshold": 3, "skip_rollbacks": True}),
        control("hook", "chaosfaultline.integrations.webhook", {"url": "http://127.0.0.1:9/h", "signing_key": {"env": "K"}}),
        control("slack", "chaosfaultline.integrations.slack", {"channel": "#c", "token": {"env": "K"}}),
        control("metrics", "chaosfaultline.integrations.prometheus", {"pushgateway_url": "http://127.0.0.1:9", "job": "j"}),
        control("traces", "chaosfaultline.integrations.opentelemetry", {
            "endpoint": "http://127.0.0.1:9/otlp", "headers": {"X-Scope-OrgID": "o"}, "secret_headers": {"Authorization": {"env": "K"}},
            "service_name": "faultline", "resource_attributes": {"deployment.environment": "test"}, "timeout": 10.0,
            "integration": "traces"}),
    ]))
    assert code == 0, output
    assert "Could not find Python module" not in output
