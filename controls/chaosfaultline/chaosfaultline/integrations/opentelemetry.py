"""OpenTelemetry traces (Faultline OpenTelemetryTraces): one trace per run, exported once the run
ends as OTLP/HTTP with the JSON encoding to ``<endpoint>/v1/traces``.

The span tree mirrors the run: the experiment is the root; the steady-state hypothesis (each time
it is checked), the method and the rollbacks are its children; every activity is a child of the
phase it ran in. Spans carry status and ``chaostoolkit.*`` attributes, never an activity's
arguments or output (they may hold secrets).

Dependency-free on purpose: chaostoolkit-opentracing pulls in the OpenTelemetry SDK with a dozen
instrumentations and exporters, which pip could not resolve in reasonable time next to
chaostoolkit 1.21. Exporting never fails the run: any error is one warning naming its type.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import InvalidActivity

from chaosfaultline.integrations import IntegrationError, check_reference, check_url, resolve

logger = logging.getLogger("chaostoolkit")

SCOPE = "chaosfaultline.integrations.opentelemetry"
TRACES_PATH = "/v1/traces"
# OTLP enum values, which OTLP/JSON encodes as integers.
KIND_INTERNAL = 1
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")


def validate_control(control: dict[str, Any]) -> None:
    arguments = control.get("provider", {}).get("arguments", {})
    name = control.get("name")
    try:
        _check(arguments)
    except IntegrationError as error:
        raise InvalidActivity(f"control {name}: {error}") from None


def _check(arguments: Any) -> None:
    if not isinstance(arguments, dict):
        raise IntegrationError("arguments must be an object")
    endpoint = arguments.get("endpoint")
    check_url(endpoint, "endpoint")
    if "?" in endpoint or "#" in endpoint:
        raise IntegrationError("endpoint must have no query or fragment (/v1/traces is appended)")
    headers = arguments.get("headers", {})
    if not isinstance(headers, dict):
        raise IntegrationError("headers must map names to strings")
    for header, value in headers.items():
        if not isinstance(header, str) or not _TOKEN.match(header) or not isinstance(value, str) \
                or "\r" in value or "\n" in value:
            raise IntegrationError("headers must map HTTP header names to strings without line breaks")
    secret_headers = arguments.get("secret_headers", {})
    if not isinstance(secret_headers, dict):
        raise IntegrationError("secret_headers must be an object")
    for header, reference in secret_headers.items():
        if not isinstance(header, str) or not _TOKEN.match(header):
            raise IntegrationError("secret_headers must be keyed by HTTP header names")
        check_reference(reference, f"secret_headers[{header}]")
    if {h.lower() for h in headers} & {h.lower() for h in secret_headers}:
        raise IntegrationError("a header is both in headers and in secret_headers")
    service_name = arguments.get("service_name", "faultline")
    if not isinstance(service_name, str) or not 0 < len(service_name) <= 256:
        raise IntegrationError("service_name must be 1-256 characters")
    attributes = arguments.get("resource_attributes", {})
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and 0 < len(k) <= 256 and isinstance(v, str) for k, v in attributes.items()):
        raise IntegrationError("resource_attributes must map names to strings")
    timeout = arguments.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise IntegrationError("timeout must be 0-300 seconds")


def _value(value: Any) -> dict[str, Any]:
    """An OTLP AnyValue (int64 as a string, as OTLP/JSON writes it)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in values.items() if v is not None]


class Span:
    def __init__(self, trace: Trace, name: str, parent: Span | None, attributes: dict[str, Any]) -> None:
        self.trace_id = trace.trace_id
        self.span_id = os.urandom(8).hex()
        self.parent_id = parent.span_id if parent else ""
        self.name = name
        self.attributes = attributes
        self.start = time.time_ns()
        self.end: int | None = None
        self.status = (STATUS_UNSET, "")

    def finish(self, status: int, message: str = "", **attributes: Any) -> None:
        if self.end is None:
            self.end = time.time_ns()
            self.status = (status, message)
            self.attributes.update(attributes)

    def otlp(self) -> dict[str, Any]:
        span: dict[str, Any] = {
            "traceId": self.trace_id, "spanId": self.span_id, "name": self.name, "kind": KIND_INTERNAL,
            "startTimeUnixNano": str(self.start), "endTimeUnixNano": str(self.end or time.time_ns()),
            "attributes": _attributes(self.attributes), "status": {"code": self.status[0]},
        }
        if self.parent_id:
            span["parentSpanId"] = self.parent_id
        if self.status[1]:
            span["status"]["message"] = self.status[1]
        return span


class Trace:
    """One run's spans. Hooks may come from chaoslib's background-activity threads, so every
    change holds the lock; activities are matched by the identity of their activity dict."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.trace_id = os.urandom(16).hex()
        self.lock = threading.Lock()
        self.spans: list[Span] = []
        self.root: Span | None = None
        self.phase: Span | None = None
        self.activities: dict[int, list[Span]] = {}
        self.exported = False

    def open(self, name: str, parent: Span | None, **attributes: Any) -> Span:
        span = Span(self, name, parent, attributes)
        self.spans.append(span)
        return span

    def payload(self) -> dict[str, Any]:
        """The ExportTraceServiceRequest, in OTLP/JSON."""
        resource = {**self.exporter.resource_attributes, "service.name": self.exporter.service_name}
        for span in self.spans:  # whatever never ended (an interrupted run) ends with the export
            span.finish(STATUS_ERROR, "did not finish")
        return {"resourceSpans": [{
            "resource": {"attributes": _attributes(resource)},
            "scopeSpans": [{"scope": {"name": SCOPE}, "spans": [span.otlp() for span in self.spans]}],
        }]}


_lock = threading.Lock()
_traces: dict[str, Trace] = {}  # by integration name: two integrations are two exports


def _trace(integration: str) -> Trace:
    """The run's trace; hooks before before-experiment (none today) get a detached one."""
    with _lock:
        return _traces.get(integration) or Trace(Exporter(integration=integration))


def _phase_started(integration: str, name: str, **attributes: Any) -> None:
    trace = _trace(integration)
    with trace.lock:
        trace.phase = trace.open(name, trace.root, **attributes)


def _phase_ended(integration: str, status: int, message: str = "", **attributes: Any) -> None:
    trace = _trace(integration)
    with trace.lock:
        if trace.phase is not None:
            trace.phase.finish(status, message, **attributes)
        trace.phase = None


def _activities_ended(integration: str) -> None:
    """The method or the rollbacks: an error when one of its activities failed or never finished
    (chaoslib's ``state`` lists only the runs that completed)."""
    trace = _trace(integration)
    with trace.lock:
        phase = trace.phase
        if phase is None:
            return
        failed = sum(1 for span in trace.spans if span.parent_id == phase.span_id and span.status[0] != STATUS_OK)
        phase.finish(STATUS_ERROR if failed else STATUS_OK, f"{failed} activity(ies) did not succeed" if failed else "",
                     **{"chaostoolkit.activities.failed": failed})
        trace.phase = None


class Exporter:
    """Where and how a trace goes; kept from before-experiment, since chaoslib calls
    ``cleanup_control`` without the control's arguments."""

    def __init__(self, endpoint: str = "", headers: dict[str, str] | None = None,
                 secret_headers: dict[str, Any] | None = None, service_name: str = "faultline",
                 resource_attributes: dict[str, str] | None = None, timeout: float = 10,
                 integration: str = "", **kwargs: Any) -> None:
        self.url = endpoint.rstrip("/") + TRACES_PATH
        self.headers = headers or {}
        self.secret_headers = secret_headers or {}
        self.service_name = service_name
        self.resource_attributes = resource_attributes or {}
        self.timeout = timeout
        self.integration = integration

    def export(self, trace: Trace) -> None:
        with trace.lock:
            if trace.exported:
                return
            trace.exported = True
            body = json.dumps(trace.payload()).encode()
        try:
            headers = {"Content-Type": "application/json", **self.headers}
            for header, reference in self.secret_headers.items():
                headers[header] = resolve(reference).decode("latin-1")
            request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except IntegrationError as error:  # its text names a variable, never a secret
            logger.warning(f"opentelemetry {self.integration}: trace not exported: {error}")
        except Exception as error:  # a trace never fails the run, and an error's text may quote a header
            logger.warning(f"opentelemetry {self.integration}: trace not exported: {type(error).__name__}")


def _guarded(hook: Callable[..., None]) -> Callable[..., None]:
    """Tracing must never change the run: no exception leaves a hook. (wraps keeps the
    signature, from which chaoslib decides to pass ``state``.)"""

    @functools.wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception as error:
            logger.warning(f"opentelemetry: {hook.__name__} failed: {type(error).__name__}")

    return wrapper


@_guarded
def before_experiment_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    title = context.get("title", "") if isinstance(context, dict) else ""
    trace = Trace(Exporter(integration=integration, **kwargs))
    with _lock:
        _traces[integration] = trace  # a new run, a new trace
    with trace.lock:
        trace.root = trace.open(title or "experiment", None, **{"chaostoolkit.experiment.title": title})


@_guarded
def after_experiment_control(context: Any, state: Any = None, integration: str = "", **kwargs: Any) -> None:
    trace = _trace(integration)
    journal = state if isinstance(state, dict) else {}
    status, deviated = str(journal.get("status", "")), bool(journal.get("deviated", False))
    with trace.lock:
        if trace.root is not None:
            ok = status == "completed" and not deviated
            message = "" if ok else ("steady state deviated" if deviated else f"run {status or 'ended'}")
            trace.root.finish(STATUS_OK if ok else STATUS_ERROR, message,
                              **{"chaostoolkit.run.status": status, "chaostoolkit.run.deviated": deviated})
    trace.exporter.export(trace)


@_guarded
def cleanup_control() -> None:
    """A run that never reached after-experiment still exports what it has."""
    with _lock:
        traces = list(_traces.values())
    for trace in traces:
        if trace.root is not None:
            trace.exporter.export(trace)


@_guarded
def before_hypothesis_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    title = context.get("title", "") if isinstance(context, dict) else ""
    _phase_started(integration, "steady-state hypothesis", **{"chaostoolkit.hypothesis.title": title})


@_guarded
def after_hypothesis_control(context: Any, state: Any = None, integration: str = "", **kwargs: Any) -> None:
    met = state.get("steady_state_met") if isinstance(state, dict) else None
    if met is False:
        _phase_ended(integration, STATUS_ERROR, "steady state not met", **{"chaostoolkit.hypothesis.met": False})
    else:
        _phase_ended(integration, STATUS_OK if met else STATUS_UNSET, **{"chaostoolkit.hypothesis.met": met})


@_guarded
def before_method_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    _phase_started(integration, "method")


@_guarded
def after_method_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    _activities_ended(integration)


@_guarded
def before_rollback_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    _phase_started(integration, "rollbacks")


@_guarded
def after_rollback_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    _activities_ended(integration)


@_guarded
def before_activity_control(context: Any, integration: str = "", **kwargs: Any) -> None:
    activity = context if isinstance(context, dict) else {}
    trace = _trace(integration)
    with trace.lock:
        span = trace.open(str(activity.get("name", "activity")), trace.phase or trace.root, **{
            "chaostoolkit.activity.name": str(activity.get("name", "")),
            "chaostoolkit.activity.type": str(activity.get("type", "")),
            "chaostoolkit.activity.provider": str((activity.get("provider") or {}).get("type", "")),
            "chaostoolkit.activity.background": bool(activity.get("background", False)),
        })
        trace.activities.setdefault(id(context), []).append(span)


@_guarded
def after_activity_control(context: Any, state: Any = None, integration: str = "", **kwargs: Any) -> None:
    trace = _trace(integration)
    run = state if isinstance(state, dict) else {}
    status = str(run.get("status", ""))
    with trace.lock:
        spans = trace.activities.get(id(context))
        if not spans:
            return
        span = spans.pop(0)
        if status == "succeeded":
            span.finish(STATUS_OK, **{"chaostoolkit.activity.status": status})
        else:
            # The exception's type only: its message may quote what the activity was given.
            exception = run.get("exception")
            last = exception[-1] if isinstance(exception, list) and exception else ""
            kind = str(last).split(":", 1)[0].strip() or None
            span.finish(STATUS_ERROR, f"activity {status}" if status else "activity did not finish",
                        **{"chaostoolkit.activity.status": status or None, "exception.type": kind})
