"""The runner's side of PROTOCOL.md, real `chaos run` subprocesses, and event-stream checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHAOS = Path(sys.executable).parent / "chaos"
HERE = Path(__file__).resolve().parent
MAX_LINE = 1024 * 1024

# An answer policy sees each poll and returns the bytes to write back (None: stay silent).
Policy = Callable[[dict[str, Any], "FakeRunner"], bytes | None]


def answer(poll: dict[str, Any], state: str, **extra: Any) -> bytes:
    body = {"type": "state", "poll_id": poll["poll_id"], "state": state, **extra}
    return (json.dumps(body) + "\n").encode()


def always_run(poll: dict[str, Any], runner: FakeRunner) -> bytes | None:
    return answer(poll, "run")


@dataclass
class FakeRunner:
    """A per-run Unix socket server speaking PROTOCOL.md: collects events (de-duplicated by
    seq, as the real runner must) and answers polls with ``policy``."""

    path: str
    policy: Policy = always_run
    events: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    hellos: list[dict[str, Any]] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # scratch space for policies

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(8)
        self._conns: list[socket.socket] = []
        self._alive = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def types(self) -> list[str]:
        with self._lock:
            return [e["type"] for e in self.events]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["type"] == kind]

    def saw(self, kind: str, **payload: Any) -> bool:
        return any(
            all(e["payload"].get(k) == v for k, v in payload.items()) for e in self.of_type(kind)
        )

    def die(self) -> None:
        """The runner crashes: the listening socket and every connection go away."""
        self._alive = False
        for s in [self._server, *self._conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def drop_connections(self) -> None:
        """Hang up on the control but keep listening, as after a runner-side I/O error."""
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conns.clear()

    def _accept(self) -> None:
        while self._alive:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self._alive:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return  # a trailing partial line is discarded, as PROTOCOL.md says
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if len(line) >= MAX_LINE:
                        self.protocol_errors.append(f"line of {len(line)} bytes")
                        continue
                    try:
                        message = json.loads(line.decode("utf-8"))
                    except ValueError as error:
                        self.protocol_errors.append(f"undecodable line: {error}")
                        continue
                    self._handle(conn, message)

    def _handle(self, conn: socket.socket, msg: dict[str, Any]) -> None:
        if msg.get("type") == "hello":
            self.hellos.append(msg)
            return
        if msg.get("type") == "poll":
            self.polls.append(msg)
            reply = self.policy(msg, self)
            if reply is not None and self._alive:
                try:
                    conn.sendall(reply)
                except OSError:
                    pass
            return
        with self._lock:
            last = self.events[-1]["seq"] if self.events else 0
            if msg["seq"] <= last:
                self.duplicates += 1
                return
            self.events.append(msg)


def shared_dir() -> Path:
    """$FAULTLINE_SHARED, else the nearest ancestor's `shared` that holds the fixtures."""
    if os.environ.get("FAULTLINE_SHARED"):
        return Path(os.environ["FAULTLINE_SHARED"]).resolve()
    for parent in HERE.parents:
        candidate = parent / "shared"
        if (candidate / "fixtures" / "experiments").is_dir():
            return candidate
    raise RuntimeError("set FAULTLINE_SHARED: no shared/fixtures/experiments above " + str(HERE))


def fixture_experiments() -> list[Path]:
    return sorted((shared_dir() / "fixtures" / "experiments").glob("*.json"))


@dataclass
class Run:
    returncode: int
    journal: dict[str, Any] | None
    stdout: str
    stderr: str
    log: str


class Chaos:
    """Runs real `chaos run` in a work directory laid out like chaostoolkit's own tests
    (the fixtures refer to tests/conftest.py, tests/fixtures/dummy.txt and a module)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.counter = 0

    def _layout(self) -> None:
        """Fresh for every run: the fixtures delete and touch these files."""
        fixtures = self.workdir / "tests" / "fixtures"
        fixtures.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tests" / "conftest.py").write_text("")
        (fixtures / "dummy.txt").write_text("dummy\n")
        for module in (shared_dir() / "fixtures" / "experiments").glob("*.py"):
            name = module.name.split("_fixtures_", 1)[-1]
            shutil.copy(module, fixtures / name)

    def write(self, name: str, document: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(json.dumps(document))
        return path

    def start(
        self,
        experiment: Path,
        arguments: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        control: bool = True,
        extra: list[str] | None = None,
        control_file: dict[str, Any] | None = None,
    ) -> Started:
        """Spawn `chaos run`; the control gets ``arguments`` as its provider arguments, or
        ``control_file`` replaces the whole global control file."""
        self._layout()
        self.counter += 1
        n = self.counter
        journal = self.workdir / f"journal-{n}.json"
        log = self.workdir / f"chaos-{n}.log"
        command = [str(CHAOS), "--no-version-check", "--log-file", str(log), "run"]
        if control:
            if control_file is None:
                provider: dict[str, Any] = {"type": "python", "module": "chaosfaultline.control"}
                if arguments is not None:
                    provider["arguments"] = arguments
                control_file = {"faultline": {"provider": provider}}
            path = self.workdir / f"control-{n}.json"
            path.write_text(json.dumps(control_file))
            command += ["--control-file", str(path)]
        command += ["--journal-path", str(journal), *(extra or []), str(experiment)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLINE_")}
        # An inherited PYTHONPATH (a source tree under test) stays behind the work directory.
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.workdir), os.environ.get("PYTHONPATH")]))
        environment.update(env or {})
        process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as the runner spawns it
        )
        return Started(process, journal, log)

    def run(self, experiment: Path, **kwargs: Any) -> Run:
        return self.start(experiment, **kwargs).wait()


@dataclass
class Started:
    process: subprocess.Popen[str]
    journal_path: Path
    log_path: Path

    def wait(self, timeout: float = 120) -> Run:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            raise
        finally:
            # chaoslib leaves an interrupted process activity's child running: end the group.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return Run(
            returncode=self.process.returncode,
            journal=json.loads(self.journal_path.read_text()) if self.journal_path.exists() else None,
            stdout=stdout,
            stderr=stderr,
            log=self.log_path.read_text() if self.log_path.exists() else "",
        )


SPANS = {"experiment", "hypothesis", "method", "rollbacks", "activity", "loading"}
CONTROL_EVENTS = {"paused", "resumed", "terminate-requested"}


def journal_activities(journal: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, status) of every activity the journal records, in the order they ran."""
    states = journal.get("steady_states") or {}
    runs: list[dict[str, Any]] = []
    runs += (states.get("before") or {}).get("probes", [])
    runs += journal.get("run", [])
    runs += (states.get("after") or {}).get("probes", [])
    runs += journal.get("rollbacks", [])
    return [(r["activity"]["name"], r.get("status")) for r in runs]


def assert_stream(runner: FakeRunner, journal: dict[str, Any]) -> list[dict[str, Any]]:
    """The event stream is complete, well nested, numbered 1..n and agrees with the journal."""
    assert not runner.protocol_errors
    events = list(runner.events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(isinstance(e["ts_us"], int) and isinstance(e["payload"], dict) for e in events)
    types = [e["type"] for e in events]
    assert types[:3] == ["loading-before", "loading-after", "experiment-before"], types
    assert types[-1] == "experiment-after", types

    stack: list[str] = []
    for kind in types:
        if kind in CONTROL_EVENTS:
            continue
        span, _, edge = kind.rpartition("-")
        assert span in SPANS and edge in ("before", "after"), kind
        if edge == "before":
            stack.append(span)
        else:
            assert stack and stack.pop() == span, f"{kind} closes nothing in {types}"
    assert stack == []

    reported = [(e["payload"]["name"], e["payload"]["status"]) for e in events if e["type"] == "activity-after"]
    assert reported == journal_activities(journal)

    hypotheses = {e["payload"]["phase"]: e["payload"]["steady_state_met"] for e in events if e["type"] == "hypothesis-after"}
    states = journal.get("steady_states") or {}
    for phase in ("before", "after"):
        if states.get(phase) is not None:
            assert hypotheses[phase] == states[phase]["steady_state_met"]

    last = events[-1]["payload"]
    assert (last["status"], last["deviated"]) == (journal["status"], journal["deviated"])
    assert journal["faultline"]["last_seq"] == len(events)
    return events


def flow_experiment(chaos: Chaos, method: list[dict[str, Any]] | None = None, **extra: Any) -> Path:
    """A hypothesis, a method whose actions leave marker files, and one rollback."""

    def touch(name: str) -> dict[str, Any]:
        return {
            "type": "action",
            "name": name,
            "provider": {"type": "process", "path": "touch", "arguments": f"{name}.marker"},
        }

    document = {
        "title": "flow",
        "description": "control flow under a runner",
        "steady-state-hypothesis": {
            "title": "the work directory exists",
            "probes": [
                {
                    "type": "probe",
                    "name": "check",
                    "tolerance": True,
                    "provider": {"type": "python", "module": "os.path", "func": "exists", "arguments": {"path": "."}},
                }
            ],
        },
        "method": method if method is not None else [touch("first"), touch("second")],
        "rollbacks": [touch("undo")],
        **extra,
    }
    return chaos.write("flow.json", document)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Waits for a condition the test needs before acting; never an assertion on time."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class LocalHTTPServer:
    """An HTTP server on a free loopback port, serving from a daemon thread until `close`."""

    def __init__(self, handler: type) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: `shutdown` waits up to one of them, at every test's teardown.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# A scripted answer: (status, headers, body bytes), or None for the stand-in's default.
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Gateway:
    """A stand-in for the Gateway's JSON API on a `LocalHTTPServer`: records every request and
    answers with ``status`` (201 with ``created_id`` for a new execution), unless ``answer``
    scripts the reply from the path and the decoded body. Stores events once per seq, as the
    real one does, from the 2xx answers only."""

    status: int = 202
    created_id: Any = "ex-created"
    answer: Callable[[str, Any], Reply | None] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        seen: dict[int, dict[str, Any]] = {}
        for r in self.requests:
            if r["path"].endswith("/events") and r["status"] < 300:
                for e in r["body"]["events"]:
                    seen.setdefault(e["seq"], e)
        return [seen[k] for k in sorted(seen)]

    def batches(self) -> list[tuple[list[int], int]]:
        """(seqs, status) of every events request, in order."""
        return [([e["seq"] for e in r["body"]["events"]], r["status"]) for r in self.requests if r["path"].endswith("/events")]

    def serve(self) -> LocalHTTPServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw)
                record = {"path": self.path, "authorization": self.headers.get("Authorization"),
                          "content_type": self.headers.get("Content-Type"), "body": body}
                scripted = state.answer(self.path, body) if state.answer else None
                if scripted is None:
                    scripted = state._default(self.path, self.server.server_address[1])
                status, headers, reply = scripted
                state.requests.append({**record, "status": status})
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the control stops reading a huge answer, or gave up waiting for it

            def do_GET(self) -> None:  # noqa: N802  # where a followed 302 would land
                state.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"), "status": 404})
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return LocalHTTPServer(Handler)

    def _default(self, path: str, port: int) -> Reply:
        if self.status in (301, 302, 307, 308):
            return self.status, {"Location": f"http://127.0.0.1:{port}/elsewhere{path}"}, b""
        if path.startswith("/api/v1/experiments/") and path.endswith("/executions") and self.status < 300:
            return 201, {}, json.dumps({"id": self.created_id}).encode()
        return self.status, {}, b"{}"


def problem(status: int, code: str, detail: str) -> Reply:
    """An answer in the Gateway's error shape (RFC 9457 with a `code`)."""
    body = {"type": "about:blank", "title": "refused", "status": status, "code": code, "detail": detail}
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()
