"""How the HTTP transport treats each kind of Gateway answer: what it retries, what it drops,
when it stops. In-process against the Gateway stand-in for exact call counts, and through real
`chaos run`s for what a run records."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chaosfaultline.config import Config, Mode
from chaosfaultline.transport import RETRY_AFTER_CAP_S, HttpTransport, retry_after_seconds
from runnerside import Chaos, Gateway, LocalHTTPServer, Reply, flow_experiment, problem

OK: Reply = (202, {}, b"{}")


def event(seq: int, **payload: Any) -> dict[str, Any]:
    return {"seq": seq, "type": "activity-after", "ts_us": 1, "payload": payload}


def held_first(script: Any) -> tuple[Any, Any]:
    """Wraps an answer script so the request carrying only seq 1 is held at the stand-in until
    released: events sent meanwhile queue up into the next batch. Returns (script, release)."""
    arrived, release = threading.Event(), threading.Event()

    def held(path: str, body: Any) -> Reply | None:
        if [e["seq"] for e in body.get("events") or []] == [1]:
            arrived.set()
            release.wait(30)
        return script(path, body)

    def send_behind(s: Sender, *events: dict[str, Any]) -> None:
        s.transport.send(event(1))
        assert arrived.wait(30)
        for e in events:
            s.transport.send(e)
        release.set()
        s.transport.flush(timeout_s=60)

    return held, send_behind


class Sender:
    """An HttpTransport on the stand-in, with its waits recorded instead of slept."""

    def __init__(self, url: str, execution_id: str | None = "ex-1", experiment_id: str | None = None, timeout_s: float = 2.0) -> None:
        config = Config(mode=Mode.HTTP, url=url, token="t", execution_id=execution_id,
                        experiment_id=experiment_id, http_timeout_s=timeout_s)
        self.transport = HttpTransport(config)
        self.waits: list[float] = []
        self.transport._sleep = self.waits.append  # before anything is sent: no wait can precede it

    def send(self, *events: dict[str, Any]) -> None:
        for e in events:
            self.transport.send(e)
        self.transport.flush(timeout_s=60)

    def close(self) -> None:
        self.transport.close()


@pytest.fixture
def sender(gateway: tuple[Gateway, str]) -> Iterator[tuple[Gateway, Sender]]:
    state, url = gateway
    s = Sender(url)
    yield state, s
    s.close()


def always(reply: Reply) -> Any:
    return lambda path, body: reply


# -- one answer class at a time --------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 302])
def test_retryable_answers_are_retried_until_the_failure_limit(sender: tuple[Gateway, Sender], status: int) -> None:
    state, s = sender
    state.answer = always((status, {}, b"{}"))
    s.send(event(1))
    assert state.batches() == [([1], status)] * 3
    assert s.waits == [0.5, 1.0]  # backoff between the three attempts; none after the last
    assert s.transport.silenced
    s.send(event(2))
    assert len(state.requests) == 3


def test_a_retryable_answer_then_success_delivers_once_more(sender: tuple[Gateway, Sender]) -> None:
    state, s = sender
    answers = iter([(503, {}, b"{}"), OK])
    state.answer = lambda path, body: next(answers, None)
    s.send(event(1))
    s.send(event(2))
    assert state.batches() == [([1], 503), ([1], 202), ([2], 202)]
    assert not s.transport.silenced


@pytest.mark.parametrize(("status", "code"), [(401, "auth.unauthenticated"), (403, "auth.forbidden"),
                                              (404, "execution.not_found"), (409, "execution.ended"), (405, "route.method_not_allowed")])
def test_final_answers_stop_the_run_after_one_request(sender: tuple[Gateway, Sender], status: int, code: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    state, s = sender
    state.answer = always(problem(status, code, "no"))
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        s.send(event(1))
        s.send(event(2))
        s.transport.complete({"status": "completed"})
    assert state.batches()[0] == ([1], status)
    assert len(state.requests) == 1 and s.waits == []
    assert s.transport.silenced
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"HTTP {status} {code}: no" in warnings[0] and "stops" in warnings[0]


def is_stub(body: Any) -> bool:
    return any("dropped" in e["payload"] for e in body["events"])


def payload_bytes(payload: Any) -> int:
    """The size the control reports for a refused payload: its JSON as it was sent."""
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refused_single_event_is_replaced_by_its_stub(sender: tuple[Gateway, Sender], status: int,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    state, s = sender
    refused = event(1, name="probe-1", activity_type="probe", phase="method", status="failed", duration=0.5,
                    output="x" * 5000, output_truncated=False, error="boom")
    state.answer = lambda path, body: None if is_stub(body) or body["events"][0]["seq"] != 1 else problem(status, "event.invalid", "bad one")
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        s.send(refused)
        s.send(event(2))
    assert state.batches() == [([1], status), ([1], 202), ([2], 202)]
    assert s.waits == [] and not s.transport.silenced
    stored = state.events()
    assert [e["seq"] for e in stored] == [1, 2]
    assert stored[0] == {"seq": 1, "type": "activity-after", "ts_us": 1, "payload": {
        "name": "probe-1", "activity_type": "probe", "phase": "method", "status": "failed", "duration": 0.5,
        "dropped": {"status": status, "code": "event.invalid", "bytes": payload_bytes(refused["payload"])}}}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"faultline: the Gateway refused event 1 (activity-after) with HTTP {status} event.invalid: bad one; sending a stub in its place"]


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refused_stub_is_dropped_after_one_more_request(sender: tuple[Gateway, Sender], status: int,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    state, s = sender
    state.answer = lambda path, body: problem(status, "event.invalid", "bad one") if body["events"][0]["seq"] == 1 else None
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        s.send(event(1, name="a"))
        s.send(event(2))
    requests = state.requests
    assert state.batches() == [([1], status), ([1], status), ([2], 202)]
    assert "dropped" not in requests[0]["body"]["events"][0]["payload"] and is_stub(requests[1]["body"])
    assert [e["seq"] for e in state.events()] == [2]
    assert s.waits == [] and not s.transport.silenced
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"faultline: the Gateway refused event 1 (activity-after) with HTTP {status} event.invalid: bad one; sending a stub in its place",
        f"faultline: the Gateway refused the stub of event 1 (activity-after) with HTTP {status} event.invalid: bad one; dropping it",
    ]


def test_lone_surrogates_are_sent_as_question_marks(sender: tuple[Gateway, Sender]) -> None:
    """Escaped as \\ud800 they would make the Gateway refuse the whole event (as not Unicode)."""
    state, s = sender
    s.send(event(1, name="a\ud800b", output={"k\udfff": "é"}))
    assert state.events()[0]["payload"] == {"name": "a?b", "output": {"k?": "é"}}


def test_a_stub_answered_retryable_is_sent_again_with_later_events(sender: tuple[Gateway, Sender]) -> None:
    """The stub takes the refused event's place in the queue: a retryable answer keeps it."""
    state, s = sender
    answers = iter([problem(400, "event.invalid", "bad"), (503, {}, b"{}")])
    state.answer = lambda path, body: next(answers, None)
    s.send(event(1, name="a"))
    assert state.batches() == [([1], 400), ([1], 503), ([1], 202)]
    assert state.events()[0]["payload"] == {"name": "a", "dropped": {"status": 400, "code": "event.invalid", "bytes": 12}}
    assert s.waits == [0.5]


def test_connection_errors_and_timeouts_are_retried(gateway: tuple[Gateway, str]) -> None:
    """A Gateway that hangs up, and one that does not answer within the timeout."""
    hangups = 0
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        nonlocal hangups
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            hangups += 1
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    s = Sender(f"http://127.0.0.1:{port}")
    s.send(event(1))
    assert (hangups, s.transport.silenced, s.waits) == (3, True, [0.5, 1.0])
    s.close()
    listener.close()

    state, url = gateway
    release = threading.Event()

    def slow(path: str, body: Any) -> Reply:
        release.wait(30)  # longer than the client's timeout: each attempt times out
        return OK

    state.answer = slow
    s = Sender(url, timeout_s=0.2)
    s.send(event(1))
    release.set()
    assert s.transport.silenced and s.waits == [0.5, 1.0]
    s.close()


# -- a refused event inside a batch ---------------------------------------------------------


def test_a_batch_with_one_refused_event_stores_its_stub_in_its_place(sender: tuple[Gateway, Sender],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """The Gateway takes a batch whole or not at all: the control halves it until the refused
    event is alone. Each (execution, seq) is stored once, so the halves' repeats are harmless."""
    state, s = sender

    def refuse_seq_5(path: str, body: Any) -> Reply | None:
        refused = any(e["seq"] == 5 and "dropped" not in e["payload"] for e in body["events"])
        return problem(400, "event.payload.invalid", "not storable") if refused else None

    state.answer, send_behind = held_first(refuse_seq_5)
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        send_behind(s, *[event(seq) for seq in range(2, 9)])
    assert state.batches() == [
        ([1], 202),
        ([2, 3, 4, 5, 6, 7, 8], 400),
        ([2, 3, 4], 202),
        ([5, 6, 7, 8], 400),
        ([5, 6], 400),
        ([5], 400),
        ([5], 202),  # its stub
        ([6], 202),
        ([7, 8], 202),
    ]
    stored = state.events()
    assert [e["seq"] for e in stored] == list(range(1, 9))
    assert [e["seq"] for e in stored if "dropped" in e["payload"]] == [5]
    assert s.waits == [] and not s.transport.silenced
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "faultline: the Gateway refused event 5 (activity-after) with HTTP 400 event.payload.invalid: not storable; sending a stub in its place"
    ]


def test_a_retryable_answer_while_splitting_keeps_the_rest_for_later(sender: tuple[Gateway, Sender]) -> None:
    state, s = sender
    answers = iter([OK, problem(413, "request.too_large", "big"), OK, (503, {}, b"")])
    state.answer, send_behind = held_first(lambda path, body: next(answers, None))
    send_behind(s, *[event(seq) for seq in range(2, 6)])
    assert state.batches() == [([1], 202), ([2, 3, 4, 5], 413), ([2, 3], 202), ([4, 5], 503), ([4, 5], 202)]
    assert [e["seq"] for e in state.events()] == [1, 2, 3, 4, 5]
    assert s.waits == [0.5]


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [("2", 2.0), ("0", 0.5), ("3600", RETRY_AFTER_CAP_S), ("soon", 0.5), ("-4", 0.5), ("", 0.5)],
)
def test_429_honours_retry_after_within_the_cap(sender: tuple[Gateway, Sender], header: str, wait: float) -> None:
    state, s = sender
    answers = iter([(429, {"Retry-After": header}, b"{}")])
    state.answer = lambda path, body: next(answers, None)
    s.send(event(1))
    assert state.batches() == [([1], 429), ([1], 202)]
    assert s.waits == [wait]  # the larger of the backoff (0.5 s) and the capped Retry-After


def test_retry_after_as_an_http_date() -> None:
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(soon) == RETRY_AFTER_CAP_S
    assert retry_after_seconds(past) == 0.0
    assert retry_after_seconds("Thu, 99 Nov 2026 99:00:00 GMT") is None
    assert retry_after_seconds("1e400") is None
    assert retry_after_seconds("1" + "0" * 400) == RETRY_AFTER_CAP_S


# -- the journal --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "requests"), [(400, 1), (413, 1), (404, 1), (401, 1), (500, 2), (429, 2)])
def test_completion_retries_only_retryable_answers(sender: tuple[Gateway, Sender], status: int, requests: int,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The Gateway requires the journal to complete, so a refused journal is logged, not resent
    without it."""
    state, s = sender
    state.answer = always(problem(status, "journal.invalid", "nope"))
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        s.transport.complete({"status": "completed"})
    assert [r["path"] for r in state.requests] == ["/api/v1/executions/ex-1/complete"] * requests
    assert s.waits == []
    if requests == 1:
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
            f"faultline: the Gateway refused the run's journal (HTTP {status} journal.invalid: nope); the execution stays incomplete"
        ]


def test_completion_waits_out_retry_after_once(sender: tuple[Gateway, Sender]) -> None:
    state, s = sender
    answers = iter([(429, {"Retry-After": "1"}, b"{}")])
    state.answer = lambda path, body: next(answers, None)
    s.transport.complete({"status": "completed"})
    assert [r["status"] for r in state.requests] == [429, 202]
    assert s.waits == [1.0]


def test_a_final_answer_to_creating_the_execution_stops_the_run(gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    state.answer = always(problem(404, "experiment.not_found", "no such experiment"))
    s = Sender(url, execution_id=None, experiment_id="exp-1")
    s.send(event(1))
    s.send(event(2))
    s.transport.complete({"status": "completed"})
    assert [r["path"] for r in state.requests] == ["/api/v1/experiments/exp-1/executions"]
    assert s.transport.silenced
    s.close()


# -- hostile answers ------------------------------------------------------------------------------

HOSTILE_BODIES = [
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"a string"',
    b"{}",
    b'{"code": 42, "detail": ["x"]}',
    b'{"code": "' + b"c" * 100_000 + b'", "detail": "' + b"d" * 100_000 + b'"}',
    b"[" * 100_000 + b"]" * 100_000,
    b"x" * (3 * 1024 * 1024),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
@pytest.mark.parametrize("status", [202, 400, 401, 503])
def test_hostile_answer_bodies_never_crash_the_control(sender: tuple[Gateway, Sender], body: bytes, status: int,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    state, s = sender
    answers = iter([(status, {"Retry-After": "x" * 10_000}, body)])
    state.answer = lambda path, b: next(answers, None)
    with caplog.at_level(logging.DEBUG, logger="chaostoolkit"):
        s.send(event(1))
        s.send(event(2))
        s.transport.complete({"status": "completed"})
    expected = {
        202: [([1], 202), ([2], 202)],
        400: [([1], 400), ([1], 202), ([2], 202)],  # replaced by its stub, then on
        401: [([1], 401)],  # stopped
        503: [([1], 503), ([1], 202), ([2], 202)],  # retried
    }[status]
    assert state.batches() == expected
    assert s.transport.silenced is (status == 401)
    assert all(len(r.getMessage()) < 2000 for r in caplog.records)  # problem fields are clipped
    if status == 400:
        code = state.events()[0]["payload"]["dropped"]["code"]
        assert code is None or (isinstance(code, str) and len(code) <= 200)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"k": value}
    return value


def test_hostile_content_of_a_refused_event_stays_out_of_its_stub(sender: tuple[Gateway, Sender]) -> None:
    """Only the type's identifying fields survive, each a clipped, storable scalar (or a small
    object for `at`); the output and anything unknown are left out whatever they hold."""
    state, s = sender
    huge = "é" * 600_000
    hostile = [
        event(1, name=huge, activity_type="probe\0x", phase="method", status="succeeded", duration=float("nan"),
              output={"deep": nested(200)}, error="\0" * 10_000, extra=huge),
        event(2, name=nested(200), activity_type=["a"] * 1000, phase="\ud800bad", status=10**40, duration=3),
        {"seq": 3, "type": "paused", "ts_us": 7, "payload": {"at": nested(200), "until_us": 5, "reason": huge}},
        {"seq": 4, "type": "resumed", "ts_us": 8, "payload": {
            "at": {f"key{i}\0" + "k" * 100: "v" * 2000 for i in range(50)}, "outcome": "resumed", "paused_us": 1}},
        {"seq": 5, "type": "no-such-type", "ts_us": 9, "payload": {"name": "x", "other": huge}},
    ]
    state.answer = lambda path, body: None if is_stub(body) else problem(422, "\0" + "c" * 10_000, "refused")
    s.send(*hostile)
    stored = state.events()
    assert [e["seq"] for e in stored] == [1, 2, 3, 4, 5]
    assert all(e["type"] == h["type"] and e["ts_us"] == h["ts_us"] for e, h in zip(stored, hostile))
    dropped = {"status": 422, "code": "\ufffd" + "c" * 199}
    one, two, three, four, five = (e["payload"] for e in stored)
    first_sent = next(r["body"]["events"][0] for r in state.requests if r["body"]["events"][0]["seq"] == 1)
    assert one["dropped"] == {**dropped, "bytes": payload_bytes(first_sent["payload"])}
    assert one["dropped"]["bytes"] > 2_400_000  # the refused payload's size, not the stub's
    assert set(one) == {"name", "activity_type", "phase", "status", "duration", "dropped"}
    assert len(one["name"].encode()) <= 1000 and one["name"].endswith("…[truncated]")
    assert one["activity_type"] == "probe\ufffdx" and one["duration"] is None
    assert two == {"name": None, "activity_type": None, "phase": "?bad", "status": None, "duration": 3,
                   "dropped": {**dropped, "bytes": two["dropped"]["bytes"]}}
    assert three["at"] == {"k": {"k": None}} and three["until_us"] == 5 and len(three["reason"].encode()) <= 1000
    assert len(four["at"]) == 8 and all(len(k) <= 64 and "\0" not in k and len(v.encode()) <= 1000 for k, v in four["at"].items())
    assert set(five) == {"dropped"}
    assert all(len(json.dumps(e)) < 12_000 for e in stored)


@pytest.mark.parametrize("body", [b"not json", b'{"id": ""}', b'{"id": 42}', b"[]", b"x" * (3 * 1024 * 1024)])
def test_creating_the_execution_with_a_hostile_answer(gateway: tuple[Gateway, str], body: bytes) -> None:
    state, url = gateway
    state.answer = always((201, {}, body))
    s = Sender(url, execution_id=None, experiment_id="exp-1")
    s.send(event(1))
    assert [r["path"] for r in state.requests] == ["/api/v1/experiments/exp-1/executions"] * 3
    assert s.transport.silenced and s.transport.execution_id is None
    s.close()


# -- through real `chaos run`s ---------------------------------------------------------------------


def test_a_refused_event_in_a_run_is_stored_as_its_stub(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    """The Gateway refuses every body holding a full event of the activity `poison`: both of
    its events are stored as stubs with their seqs, so the execution's seqs stay 1..n and
    the step is still recognisable; everything else is stored as sent."""
    state, url = gateway

    def refuse_poison(path: str, body: Any) -> Reply | None:
        events = body.get("events") or []
        if any(e["payload"].get("name") == "poison" and "dropped" not in e["payload"] for e in events):
            return problem(400, "event.payload.invalid", "poisoned")
        return None

    state.answer = refuse_poison
    poison = {"type": "probe", "name": "poison", "provider": {"type": "process", "path": "true"}}
    touch = {"type": "action", "name": "after", "provider": {"type": "process", "path": "touch", "arguments": "after.marker"}}
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos, method=[poison, touch]), env=env)
    journal = done.journal
    assert journal is not None and (journal["status"], done.returncode) == ("completed", 0)
    assert journal["faultline"]["reporting"] == "ok"
    stored = state.events()
    assert [e["seq"] for e in stored] == list(range(1, journal["faultline"]["last_seq"] + 1))
    refused = {r["body"]["events"][0]["seq"]: r["body"]["events"][0] for r in state.requests
               if r["status"] == 400 and len(r["body"]["events"]) == 1}
    stubs = [e for e in stored if "dropped" in e["payload"]]
    assert [e["seq"] for e in stubs] == sorted(refused) and len(stubs) == 2
    before, after = stubs
    assert (before["type"], after["type"]) == ("activity-before", "activity-after")
    for stub in stubs:
        original = refused[stub["seq"]]
        assert (stub["type"], stub["ts_us"]) == (original["type"], original["ts_us"])
        assert stub["payload"]["dropped"] == {"status": 400, "code": "event.payload.invalid", "bytes": payload_bytes(original["payload"])}
    assert before["payload"] == {"name": "poison", "activity_type": "probe", "phase": "method", "background": False,
                                 "dropped": before["payload"]["dropped"]}
    assert {k: after["payload"][k] for k in ("name", "activity_type", "phase", "status")} == {
        "name": "poison", "activity_type": "probe", "phase": "method", "status": "succeeded"}
    assert "output" not in after["payload"] and isinstance(after["payload"]["duration"], float)
    assert ("after", "succeeded") in [(e["payload"]["name"], e["payload"]["status"]) for e in stored if e["type"] == "activity-after"]
    assert stored[-1]["type"] == "experiment-after"
    assert state.requests[-1]["path"] == "/api/v1/executions/ex-1/complete" and state.requests[-1]["status"] == 202
    assert done.log.count("sending a stub in its place") == 2 and "dropping it" not in done.log


def test_a_401_mid_run_stops_reporting_and_the_run_completes(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    """The first batch is taken; from the next one on, the token is revoked."""
    state, url = gateway
    answers = iter([OK])
    state.answer = lambda path, body: next(answers, problem(401, "auth.unauthenticated", "a valid bearer token is required"))
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    journal = done.journal
    assert journal is not None and (journal["status"], done.returncode) == ("completed", 0)
    assert [a["status"] for a in journal["run"]] == ["succeeded", "succeeded"]
    assert journal["faultline"]["reporting"] == "silenced"
    # Nothing is sent after the 401, not even the journal.
    assert [(r["path"], r["status"]) for r in state.requests] == [("/api/v1/executions/ex-1/events", 202), ("/api/v1/executions/ex-1/events", 401)]
    assert state.events()[0]["type"] == "loading-before"
    assert done.log.count("reporting stops for this run") == 1


def test_a_429_with_retry_after_in_a_run_resends_the_same_events(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    answers = iter([(429, {"Retry-After": "1"}, json.dumps({"code": "rpc.resource_exhausted"}).encode())])
    state.answer = lambda path, body: next(answers, None)
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    journal = done.journal
    assert journal is not None and (journal["status"], done.returncode) == ("completed", 0)
    assert journal["faultline"]["reporting"] == "ok"
    batches = state.batches()
    assert batches[0][1] == 429 and batches[1][1] == 202
    assert batches[1][0][: len(batches[0][0])] == batches[0][0]  # the refused events first, again
    assert [e["seq"] for e in state.events()] == list(range(1, journal["faultline"]["last_seq"] + 1))
    assert state.requests[-1]["path"].endswith("/complete") and state.requests[-1]["status"] == 202
