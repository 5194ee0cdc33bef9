"""The two ways out of the control: the runner's Unix socket and the Gateway's HTTP API.

Both are best effort by design: every failure is logged and counted, and after
``max_consecutive_failures`` failures in a row the transport goes silent for the rest of the
run. Nothing here raises to the caller except the exceptions chaoslib's own signal handlers
inject (``InterruptExecution`` on SIGTERM, ``SystemExit`` on SIGUSR1/2), which must reach
chaoslib untouched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

from chaosfaultline import PROTOCOL_VERSION
from chaosfaultline.config import Config

logger = logging.getLogger("chaostoolkit")

MAX_LINE_BYTES = 1024 * 1024  # both directions, newline included
RESEND_BUFFER_EVENTS = 1024
RESEND_BUFFER_BYTES = 8 * 1024 * 1024
HTTP_BATCH_EVENTS = 500
# The longest a Gateway's Retry-After holds the sender (and the completion) back: as long as
# `flush` waits for the queue after the last event.
RETRY_AFTER_CAP_S = 5.0
# How much of an error answer is read for its problem `code` and `detail`.
PROBLEM_BODY_BYTES = 64 * 1024
TRUNCATION_MARKER = "…[truncated]"
# Strings a stub keeps (PROTOCOL.md §8) stay within the Gateway's 1000 bytes for an activity
# name, marker included, so a clipped name is storable.
STUB_TEXT_BYTES = 1000 - len(TRUNCATION_MARKER.encode("utf-8"))
# The payload fields a stub keeps, per type: what identifies the step to whoever follows the
# events (the console's timeline pairs `*-before`/`*-after` by them).
STUB_FIELDS: dict[str, tuple[str, ...]] = {
    "loading-before": ("source",),
    "loading-after": ("title",),
    "experiment-before": ("title", "execution_id", "protocol"),
    "experiment-after": ("status", "deviated", "duration", "steady_state_before", "steady_state_after", "interruption"),
    "hypothesis-before": ("title", "phase", "probes"),
    "hypothesis-after": ("title", "phase", "steady_state_met"),
    "method-before": ("activities",),
    "method-after": ("runs", "succeeded", "failed"),
    "rollbacks-before": ("activities",),
    "rollbacks-after": ("runs", "succeeded", "failed"),
    "activity-before": ("name", "activity_type", "phase", "background"),
    "activity-after": ("name", "activity_type", "phase", "status", "duration"),
    "paused": ("at", "until_us", "reason"),
    "resumed": ("at", "outcome", "paused_us"),
    "terminate-requested": ("reason", "rollbacks", "at", "ts_us"),
}
# The only kept fields that are objects (of a few scalars, `interruption` holding an `at`).
STUB_OBJECTS = frozenset({"at", "interruption"})

State = Literal["run", "pause", "terminate"]


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line: strict JSON (no NaN/Infinity), raises ValueError or TypeError when
    ``message`` cannot be. ``default=str`` keeps odd values (bytes, sets) encodable."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)
    return (text + "\n").encode("utf-8", "replace")


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (at a character boundary), marked when cut."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore") + TRUNCATION_MARKER


def json_body(value: Any) -> bytes:
    """What an HTTP request carries: compact JSON, NUL-free (see ``without_nul``), with lone
    surrogates sent as ``?`` as on the socket: escaped (``\\ud800``) the Gateway would refuse
    the body, since neither it nor Postgres takes them."""
    text = json.dumps(without_nul(value), separators=(",", ":"), ensure_ascii=False, default=lambda o: without_nul(str(o)))
    return text.encode("utf-8", "replace")


def stub_of(event: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The event the Gateway refused (``reply``), reduced to what keeps the execution's ``seq``
    contiguous and its step recognisable: same seq, type and time, the type's identifying
    fields as small clean values, and ``dropped`` saying why (PROTOCOL.md §8)."""
    payload = event.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    fields = [name for name in STUB_FIELDS.get(str(event.get("type")), ()) if name in payload]
    kept = {name: _small(payload[name], 2 if name in STUB_OBJECTS else 0) for name in fields}
    try:
        size: int | None = len(json_body(payload))
    except (TypeError, ValueError, RecursionError):
        size = None
    kept["dropped"] = {"status": reply.status, "code": _small(reply.code, 0), "bytes": size}
    return {"seq": event.get("seq"), "type": event.get("type"), "ts_us": event.get("ts_us"), "payload": kept}


def _small(value: Any, depth: int) -> Any:
    """``value`` if it is a plain scalar (strings clipped, with what the Gateway cannot store
    replaced), an object of at most 8 such fields while ``depth`` lasts, else null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        # Lone surrogates (not UTF-8) to "?", NUL (not storable as jsonb) to U+FFFD.
        return clip_text(value.encode("utf-8", "replace").decode("utf-8").replace("\0", "\ufffd"), STUB_TEXT_BYTES)
    if isinstance(value, dict) and depth > 0:
        fields = [(k, v) for k, v in value.items() if isinstance(k, str)][:8]
        return {_small(k[:64], 0): _small(v, depth - 1) for k, v in fields}
    return None


def without_nul(value: Any) -> Any:
    """``value`` with U+0000 (NUL) in its strings and keys replaced by U+FFFD: the Gateway
    keeps events and journals as Postgres jsonb, which cannot hold U+0000, and refuses the
    whole message. A probe's output can hold it (``printf 'a\\0b'``). New containers: the
    live journal chaoslib writes to disk stays as it is."""
    if isinstance(value, str):
        return value.replace("\0", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k) if isinstance(k, str) else k: without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


@dataclass(frozen=True)
class Answer:
    state: State
    rollbacks: bool | None = None
    pause_until_us: int | None = None
    reason: str | None = None

    @staticmethod
    def parse(obj: Any, poll_id: int) -> Answer | None:
        """The answer to poll ``poll_id`` in ``obj``, or None when ``obj`` is not one."""
        if not isinstance(obj, dict) or obj.get("type") != "state":
            return None
        if obj.get("poll_id") != poll_id or isinstance(obj.get("poll_id"), bool):
            return None
        state = obj.get("state")
        if state not in ("run", "pause", "terminate"):
            logger.warning("faultline: runner answered unknown state %.80r; carrying on", state)
            return Answer(state="run")
        rollbacks = obj.get("rollbacks")
        until = obj.get("pause_until_us")
        reason = obj.get("reason")
        return Answer(
            state=state,
            rollbacks=rollbacks if isinstance(rollbacks, bool) else None,
            pause_until_us=until if isinstance(until, int) and not isinstance(until, bool) else None,
            reason=reason[:1000] if isinstance(reason, str) else None,
        )


class Transport(Protocol):
    @property
    def silenced(self) -> bool:
        """Events can no longer be delivered."""
        ...

    @property
    def polling(self) -> bool:
        """Polls may still get an answer."""
        ...

    def send(self, event: dict[str, Any]) -> None: ...

    def poll(self, at: dict[str, Any]) -> Answer | None: ...

    def flush(self) -> None: ...

    def complete(self, journal: dict[str, Any]) -> None:
        """The run's journal, once it ended: only where nobody else completes the execution."""
        ...

    def close(self) -> None: ...


class _Failures:
    """Counts consecutive failures and silences the transport at the limit."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.consecutive = 0
        self.silenced = False

    def failed(self, reason: str) -> None:
        self.consecutive += 1
        if self.consecutive >= self.limit and not self.silenced:
            self.silenced = True
            logger.warning(
                "faultline: %s failed %d times in a row (%s); reporting stops for this run",
                self.what,
                self.consecutive,
                reason,
            )
        else:
            logger.debug("faultline: %s failed: %s", self.what, reason)

    def succeeded(self) -> None:
        self.consecutive = 0


class SocketTransport:
    """Newline-delimited JSON over the runner's per-run Unix stream socket (PROTOCOL.md)."""

    def __init__(self, config: Config) -> None:
        assert config.socket_path
        self._config = config
        self._path = config.socket_path
        self._lock = threading.RLock()
        self._conn: socket.socket | None = None
        self._rbuf = bytearray()
        self._discarding = False
        # Every event sent, for replay after a reconnect; the runner drops seqs it has seen.
        self._sent: deque[bytes] = deque()
        self._sent_bytes = 0
        self._poll_id = 0
        self._failures = _Failures(config.max_consecutive_failures, "runner socket")
        # Counted apart: a runner that takes events but never answers would otherwise
        # cost every checkpoint a full timeout.
        self._poll_failures = _Failures(config.max_consecutive_failures, "runner polls")

    @property
    def silenced(self) -> bool:
        return self._failures.silenced

    @property
    def polling(self) -> bool:
        return not self._failures.silenced and not self._poll_failures.silenced

    def send(self, event: dict[str, Any]) -> None:
        line = encode(event)
        with self._lock:
            self._remember(line)
            if self.silenced:
                return
            conn = self._connected(skip_newest=True)
            if conn is None:
                return
            if not self._write(conn, line):
                return
            self._failures.succeeded()

    def poll(self, at: dict[str, Any]) -> Answer | None:
        with self._lock:
            if not self.polling:
                return None
            conn = self._connected(skip_newest=False)
            if conn is None:
                return None
            self._poll_id += 1
            poll_id = self._poll_id
            request = {"type": "poll", "poll_id": poll_id, "ts_us": time.time_ns() // 1000, "at": at}
            if not self._write(conn, encode(request)):
                return None
            deadline = time.monotonic() + self._config.io_timeout_s
            while True:
                try:
                    line = self._read_line(conn, deadline)
                except OSError as error:
                    self._drop(f"reading an answer: {error}")
                    return None
                except BaseException:
                    self._disconnect()
                    raise
                if line is None:
                    # The connection stays: a late answer is skipped by its poll_id.
                    self._poll_failures.failed(f"no answer to poll {poll_id}")
                    return None
                try:
                    obj = json.loads(line)
                except ValueError:
                    logger.debug("faultline: ignoring a line from the runner that is not JSON")
                    continue
                answer = Answer.parse(obj, poll_id)
                if answer is not None:
                    self._poll_failures.succeeded()
                    self._failures.succeeded()
                    return answer
                logger.debug("faultline: ignoring a runner line that does not answer poll %d", poll_id)

    def flush(self) -> None:
        """Writes are synchronous: nothing to wait for."""

    def complete(self, journal: dict[str, Any]) -> None:
        """The runner completes the execution from `chaos`'s exit and journal file."""

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    # -- internals (called with the lock held) --

    def _remember(self, line: bytes) -> None:
        self._sent.append(line)
        self._sent_bytes += len(line)
        while len(self._sent) > RESEND_BUFFER_EVENTS or self._sent_bytes > RESEND_BUFFER_BYTES:
            self._sent_bytes -= len(self._sent.popleft())

    def _connected(self, skip_newest: bool) -> socket.socket | None:
        """The open connection, or a new one that has said hello and replayed every
        buffered event (``skip_newest``: the caller is about to write that one itself)."""
        if self._conn is not None:
            return self._conn
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self._config.io_timeout_s)
        try:
            conn.connect(self._path)
        except OSError as error:
            conn.close()
            self._failures.failed(f"connecting to {self._path}: {error}")
            return None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._rbuf.clear()
        self._discarding = False
        hello = {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "execution_id": self._config.execution_id,
            "pid": os.getpid(),
        }
        replay = list(self._sent)
        if skip_newest and replay:
            replay.pop()
        for line in [encode(hello), *replay]:
            if not self._write(conn, line):
                return None
        return conn

    def _write(self, conn: socket.socket, line: bytes) -> bool:
        try:
            conn.settimeout(self._config.io_timeout_s)
            conn.sendall(line)
            return True
        except OSError as error:
            # A partial line may be on the wire: this connection is unusable now.
            self._drop(f"writing: {error}")
            return False
        except BaseException:
            self._disconnect()
            raise

    def _read_line(self, conn: socket.socket, deadline: float) -> bytes | None:
        """The next complete line, or None at the deadline. Over-long lines are skipped."""
        while True:
            newline = self._rbuf.find(b"\n")
            if newline >= 0:
                line = bytes(self._rbuf[:newline])
                del self._rbuf[: newline + 1]
                if self._discarding:
                    self._discarding = False
                    continue
                if len(line) + 1 > MAX_LINE_BYTES:
                    logger.debug("faultline: skipping an over-long line from the runner")
                    continue
                return line
            if len(self._rbuf) >= MAX_LINE_BYTES:
                if not self._discarding:
                    logger.debug("faultline: skipping an over-long line from the runner")
                self._discarding = True
                self._rbuf.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            conn.settimeout(remaining)
            try:
                data = conn.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionResetError("runner closed the connection")
            self._rbuf += data

    def _drop(self, reason: str) -> None:
        self._disconnect()
        self._failures.failed(reason)

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would hand the bearer token to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# 4xx answers that refuse the body itself: another body (fewer events) may be taken.
REFUSED_BODY = frozenset({400, 413, 422})
# Answers worth asking again: the Gateway, or something in front of it, is busy or down.
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Reply:
    """One POST's outcome, classified once for every caller.

    ``kind``: ``ok`` (2xx; ``body`` is the decoded answer), ``retry`` (connection error, timeout,
    3xx, 408, 425, 429, 5xx: the same request may succeed later), ``refused`` (400, 413, 422:
    this body will never be taken) or ``final`` (any other 4xx: no request of this run will be).
    """

    kind: Literal["ok", "retry", "refused", "final"]
    body: Any = None
    status: int | None = None
    code: str | None = None
    detail: str | None = None
    retry_after_s: float | None = None
    reason: str = ""

    @staticmethod
    def of_status(status: int, headers: Any, raw: bytes) -> Reply:
        code, detail = _problem(raw)
        shown = f"HTTP {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
        if status in RETRYABLE_4XX or status >= 500 or status < 400:
            retry_after = retry_after_seconds(headers.get("Retry-After") if headers is not None else None)
            return Reply("retry", status=status, code=code, detail=detail, retry_after_s=retry_after, reason=shown)
        kind: Literal["refused", "final"] = "refused" if status in REFUSED_BODY else "final"
        return Reply(kind, status=status, code=code, detail=detail, reason=shown)


def _problem(raw: bytes) -> tuple[str | None, str | None]:
    """The Gateway's problem ``code`` and ``detail`` (RFC 9457 body), clipped; None for
    whatever is missing, not JSON or not a string: an error body is only ever logged."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    clipped = [v[:200] if isinstance(v, str) else None for v in (obj.get("code"), obj.get("detail"))]
    return clipped[0], clipped[1]


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` (delta-seconds or HTTP-date) as seconds within [0, RETRY_AFTER_CAP_S];
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(int(value))
    except OverflowError:
        seconds = RETRY_AFTER_CAP_S
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


class HttpTransport:
    """Batches events to the Gateway from a background thread so a slow Gateway never
    holds up an activity. Report only: over HTTP there is no pause or terminate.

    What is retried and what is not follows `Reply`: a retryable answer keeps the batch and
    counts a failure (``max_consecutive_failures`` in a row silence the run); a refused batch
    is split until the refused events are alone, and each is replaced by a stub (dropped if
    the stub is refused too); any other 4xx stops reporting for the run at once, since no
    later request can succeed."""

    def __init__(self, config: Config) -> None:
        assert config.url and config.token
        self._config = config
        self._execution_id = config.execution_id
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._queued = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()  # set when everything sent so far is delivered or given up
        self._idle.set()
        self._failures = _Failures(config.max_consecutive_failures, "Gateway")
        self._stopped = False  # a final answer: nothing more is sent this run
        self._stubbed: set[Any] = set()  # seqs whose event was refused and replaced by a stub
        self._sleep = time.sleep  # the waits between attempts; tests record them
        # Built on the sender thread: its HTTPS handler loads the CA store, tens of ms.
        self._opener: urllib.request.OpenerDirector | None = None
        self._thread = threading.Thread(target=self._loop, name="faultline-http", daemon=True)
        self._thread.start()

    @property
    def silenced(self) -> bool:
        return self._failures.silenced or self._stopped

    @property
    def polling(self) -> bool:
        return False

    @property
    def execution_id(self) -> str | None:
        return self._execution_id

    def send(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self.silenced:
                return
            if self._queued >= RESEND_BUFFER_EVENTS * 4:
                logger.debug("faultline: HTTP queue full, dropping event %s", event.get("seq"))
                return
            self._queued += 1
            self._idle.clear()
            self._queue.put(event)

    def poll(self, at: dict[str, Any]) -> Answer | None:
        return None

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until what was sent is delivered or given up."""
        self._idle.wait(timeout_s)

    def complete(self, journal: dict[str, Any]) -> None:
        """Hands the journal to the Gateway, which decides the outcome from it as a runner's
        CompleteExecution would: nobody else knows how an external run ended. Called after
        ``flush``, on the hook's thread; a retryable answer is retried once (after its
        Retry-After, capped), a final one never. The Gateway requires the journal (a JSON
        object), so a refused journal cannot be replaced by a completion without one."""
        if self.silenced or self._execution_id is None:
            return
        path = f"/api/v1/executions/{urllib.parse.quote(self._execution_id, safe='')}/complete"
        for attempt in range(2):
            reply = self._post(path, {"journal": journal})
            if reply.kind == "ok":
                return
            if reply.kind != "retry":
                logger.warning("faultline: the Gateway refused the run's journal (%s); the execution stays incomplete", reply.reason)
                return
            self._failures.failed(f"POST {path}: {reply.reason}")
            if attempt == 0 and reply.retry_after_s:
                self._sleep(reply.retry_after_s)

    def close(self) -> None:
        """Stop after what is queued. No waiting: ``flush`` ran after the last event, and
        the thread is a daemon, so a dead Gateway cannot hold up the process's exit."""
        self._queue.put(None)

    def _loop(self) -> None:
        pending: list[dict[str, Any]] = []
        while True:
            if not pending:
                item = self._queue.get()
                if item is None:
                    return
                pending.append(item)
            while len(pending) < HTTP_BATCH_EVENTS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop once this batch is through
                    break
                pending.append(item)
            before = len(pending)
            pending, retry = self._deliver(pending)
            if retry is None:
                self._failures.succeeded()
            else:
                self._failures.failed(retry.reason)
            with self._lock:
                self._queued -= before - len(pending)
                if self.silenced:
                    self._queued = 0
                    self._idle.set()
                    return
                if not pending and self._queued == 0:
                    self._idle.set()
            if retry is not None:
                backoff = min(0.25 * 2**self._failures.consecutive, 2.0)
                self._sleep(max(backoff, retry.retry_after_s or 0.0))

    def _deliver(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Reply | None]:
        """Sends ``events``; returns those still to send (a tail of ``events``) and the
        retryable reply that stopped it, or ([], None) when each was stored or dropped."""
        if self._execution_id is None:
            created = self._create_execution()
            if isinstance(created, Reply):
                return (events, created) if created.kind == "retry" else ([], None)
            self._execution_id = created
        path = f"/api/v1/executions/{urllib.parse.quote(self._execution_id, safe='')}/events"
        reply = self._post(path, {"events": events})
        if reply.kind == "ok":
            return [], None
        if reply.kind == "retry":
            return events, reply
        if reply.kind == "final":
            self._stop(f"sending events to execution {self._execution_id}", reply)
            return [], None
        if len(events) == 1:
            return self._replace(events[0], reply)
        # The Gateway takes a batch whole or not at all, and keeps each (execution, seq) once:
        # halves can be sent again safely until the refused events stand alone.
        middle = len(events) // 2
        rest, retry = self._deliver(events[:middle])
        if retry is not None:
            return rest + events[middle:], retry
        if self.silenced:
            return [], None
        return self._deliver(events[middle:])

    def _replace(self, event: dict[str, Any], reply: Reply) -> tuple[list[dict[str, Any]], Reply | None]:
        """A refused event is sent once more as its stub, so the execution's seqs stay
        contiguous (a hole would hold back what the Gateway reports as received). A stub is
        never replaced in turn: refused, it is dropped."""
        seq = event.get("seq")
        if seq in self._stubbed:
            logger.warning("faultline: the Gateway refused the stub of event %s (%s) with %s; dropping it",
                           seq, event.get("type"), reply.reason)
            return [], None
        self._stubbed.add(seq)
        logger.warning("faultline: the Gateway refused event %s (%s) with %s; sending a stub in its place",
                       seq, event.get("type"), reply.reason)
        return self._deliver([stub_of(event, reply)])

    def _create_execution(self) -> str | Reply:
        """The new execution's id, or the reply that prevented it (a final one stops the run)."""
        assert self._config.experiment_id
        experiment = urllib.parse.quote(self._config.experiment_id, safe="")
        reply = self._post(f"/api/v1/experiments/{experiment}/executions", {"external": True})
        if reply.kind == "ok":
            created = reply.body.get("id") if isinstance(reply.body, dict) else None
            if isinstance(created, str) and created:
                return created
            return Reply("retry", reason="creating the execution: no id in the answer")
        if reply.kind != "retry":
            self._stop(f"creating an execution of experiment {self._config.experiment_id}", reply)
        return reply

    def _stop(self, what: str, reply: Reply) -> None:
        """A final answer: later requests would all be refused the same way."""
        if not self._stopped:
            logger.warning("faultline: the Gateway refused %s (%s); reporting stops for this run", what, reply.reason)
        self._stopped = True

    def _post(self, path: str, body: dict[str, Any]) -> Reply:
        request = urllib.request.Request(
            self._config.url + path,  # type: ignore[operator]
            data=json_body(body),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._config.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        if self._opener is None:
            self._opener = urllib.request.build_opener(_NoRedirects)
        try:
            with self._opener.open(request, timeout=self._config.http_timeout_s) as response:
                raw = response.read(MAX_LINE_BYTES)
        except urllib.error.HTTPError as error:
            try:
                raw = error.read(PROBLEM_BODY_BYTES)
            except (OSError, ValueError):
                raw = b""
            finally:
                error.close()
            return Reply.of_status(error.code, error.headers, raw)
        except (OSError, ValueError) as error:
            return Reply("retry", reason=f"POST {path}: {error}")
        if not raw.strip():
            return Reply("ok", body={})
        try:
            return Reply("ok", body=json.loads(raw))
        except (ValueError, RecursionError):
            return Reply("ok", body={})
