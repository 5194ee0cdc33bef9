"""The OpenTelemetry integration under real `chaos run`s of the Chaos Toolkit fixtures, exporting
to a real local HTTP collector that captures the OTLP/HTTP JSON requests."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from runnerside import Chaos, LocalHTTPServer, Run, fixture_experiments

FIXTURES = fixture_experiments()
MODULE = "chaosfaultline.integrations.opentelemetry"
TOKEN = "otlp-token-canary-7f3a"


class Collector:
    """Captures every POST; answers ``status`` (200 with an empty ExportTraceServiceResponse).
    GET is a health check for safeguards: 200 until the file ``down`` exists, then 503."""

    def __init__(self, status: int = 200, down: Path | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = status
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(503 if down is not None and down.exists() else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = b"{}" if collector.status == 200 else b'{"message": "no"}'
                self.send_response(collector.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.http = LocalHTTPServer(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.close()


def arguments(endpoint: str, **extra: Any) -> dict[str, Any]:
    """What ControlRenderer renders for an OpenTelemetryTraces integration."""
    return {"endpoint": endpoint, "headers": {"X-Scope-OrgID": "chaos"},
            "secret_headers": {"Authorization": {"env": "FL_OTLP_TOKEN"}}, "service_name": "faultline-tests",
            "resource_attributes": {"deployment.environment": "test"}, "timeout": 5.0, "integration": "traces", **extra}


def run(chaos: Chaos, experiment: Path, args: dict[str, Any]) -> Run:
    """A run as the runner starts it: the rendered control in the global control file."""
    control_file = {"traces": {"provider": {"type": "python", "module": MODULE, "arguments": args}}}
    return chaos.run(experiment, control_file=control_file, env={"FL_OTLP_TOKEN": f"Bearer {TOKEN}"})


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: next(iter(item["value"].values())) for item in items}


def children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((s for s in spans if s.get("parentSpanId") == parent["spanId"]), key=lambda s: int(s["startTimeUnixNano"]))


def assert_trace_mirrors(journal: dict[str, Any], spans: list[dict[str, Any]]) -> None:
    """One trace; the experiment at the root, phases under it, every activity under its phase,
    in the journal's order with the journal's statuses; children within their parents' time."""
    assert len({s["traceId"] for s in spans}) == 1
    trace_id = spans[0]["traceId"]
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    assert len({s["spanId"] for s in spans}) == len(spans)
    assert all(len(s["spanId"]) == 16 and s["kind"] == 1 for s in spans)
    ids = {s["spanId"]: s for s in spans}
    for span in spans:
        start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
        assert 0 < start <= end
        if "parentSpanId" in span:
            parent = ids[span["parentSpanId"]]
            assert int(parent["startTimeUnixNano"]) <= start and end <= int(parent["endTimeUnixNano"])

    roots = [s for s in spans if "parentSpanId" not in s]
    assert len(roots) == 1
    root = roots[0]
    assert root["name"] == journal["experiment"]["title"]
    root_attributes = attributes(root["attributes"])
    assert root_attributes["chaostoolkit.run.status"] == journal["status"]
    assert root_attributes["chaostoolkit.run.deviated"] == journal["deviated"]
    ok = journal["status"] == "completed" and not journal["deviated"]
    assert root["status"]["code"] == (1 if ok else 2)

    # Phases in the order chaoslib runs them: rollbacks follow a method that ran, unless the
    # experiment's runtime says never (they are a phase even when none are declared).
    states = journal.get("steady_states") or {}
    method_ran = bool(journal.get("run") or states.get("after"))
    rollbacks = (journal["experiment"].get("runtime") or {}).get("rollbacks", {}).get("strategy") != "never"
    expected: list[tuple[str, list[dict[str, Any]]]] = []
    if states.get("before"):
        expected.append(("steady-state hypothesis", states["before"]["probes"]))
    if method_ran:
        expected.append(("method", journal.get("run", [])))
    if states.get("after"):
        expected.append(("steady-state hypothesis", states["after"]["probes"]))
    if method_ran and rollbacks:
        expected.append(("rollbacks", journal.get("rollbacks", [])))
    phases = children(spans, root)
    assert [p["name"] for p in phases] == [name for name, _ in expected]
    for phase, (name, runs) in zip(phases, expected):
        activities = children(spans, phase)
        assert [a["name"] for a in activities] == [r["activity"]["name"] for r in runs], name
        for activity, record in zip(activities, runs):
            values = attributes(activity["attributes"])
            assert values["chaostoolkit.activity.status"] == record["status"]
            assert values["chaostoolkit.activity.type"] == record["activity"]["type"]
            assert activity["status"]["code"] == (1 if record["status"] == "succeeded" else 2)
        if name == "steady-state hypothesis":
            met = states["before" if phase is phases[0] else "after"]["steady_state_met"]
            assert attributes(phase["attributes"])["chaostoolkit.hypothesis.met"] == met
            assert phase["status"]["code"] == (1 if met else 2)
    assert len(spans) == 1 + len(phases) + sum(len(runs) for _, runs in expected)


def exported(collector: Collector) -> tuple[dict[str, str], list[dict[str, Any]], dict[str, Any]]:
    """The one export: its headers, spans and resource attributes."""
    assert len(collector.requests) == 1, collector.requests
    path, headers, body = collector.requests[0]
    assert path == "/otlp/v1/traces"
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    (resource_spans,) = document["resourceSpans"]
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"]["name"] == MODULE
    return headers, scope_spans["spans"], attributes(resource_spans["resource"]["attributes"])


@pytest.mark.parametrize("experiment", FIXTURES, ids=[p.stem.split("fixtures_")[-1] for p in FIXTURES])
def test_a_run_exports_one_trace_that_mirrors_its_journal(experiment: Path, chaos: Chaos, collector: Collector) -> None:
    bare = chaos.run(experiment, control=False)
    traced = run(chaos, experiment, arguments(collector.url + "/otlp/"))
    assert traced.journal is not None and bare.journal is not None, traced.stderr
    assert (traced.journal["status"], traced.journal["deviated"], traced.returncode) == \
        (bare.journal["status"], bare.journal["deviated"], bare.returncode)

    headers, spans, resource = exported(collector)
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-scope-orgid"] == "chaos"
    assert resource == {"service.name": "faultline-tests", "deployment.environment": "test"}
    assert_trace_mirrors(traced.journal, spans)
    for text in (traced.stdout, traced.stderr, traced.log):
        assert TOKEN not in text


def test_a_failing_probe_is_an_error_span_with_its_exception_type(chaos: Chaos, collector: Collector) -> None:
    (experiment,) = [p for p in FIXTURES if p.name.endswith("check-file-exists-fail.json")]
    traced = run(chaos, experiment, arguments(collector.url + "/otlp"))
    assert traced.journal is not None
    _, spans, _ = exported(collector)
    (probe,) = [s for s in spans if s["name"] == "check-file-exists"]
    assert probe["status"]["code"] == 2
    assert attributes(probe["attributes"])["exception.type"].endswith("ActivityFailed")


def test_a_deviated_run_marks_the_hypothesis_and_the_root(chaos: Chaos, collector: Collector) -> None:
    (experiment,) = [p for p in FIXTURES if p.name.endswith("check-file-exists-deviated.json")]
    traced = run(chaos, experiment, arguments(collector.url + "/otlp"))
    assert traced.journal is not None and traced.journal["deviated"]
    _, spans, _ = exported(collector)
    hypotheses = [s for s in spans if s["name"] == "steady-state hypothesis"]
    assert [h["status"]["code"] for h in hypotheses] == [1, 2]
    (root,) = [s for s in spans if "parentSpanId" not in s]
    assert root["status"] == {"code": 2, "message": "steady state deviated"}


def test_an_interrupted_run_exports_what_it_reached(chaos: Chaos) -> None:
    """A safeguard stops the run in the middle of its only activity (which takes the health check
    down, so the trip cannot come before it): the trace still goes out, the unfinished activity
    and its method are errors, the root says interrupted."""
    collector = Collector(down=chaos.workdir / "down")
    try:
        experiment = chaos.write("interrupted.json", {
            "title": "interrupted", "description": "d",
            "method": [{"type": "action", "name": "long",
                        "provider": {"type": "process", "path": "sh", "arguments": ["-c", "touch down && sleep 60"]}}]})
        guard = {"url": collector.url + "/health", "method": "GET", "headers": {}, "secret_headers": {}, "body": "", "timeout": 5.0,
                 "expected_status": [], "expected_body_regex": ""}
        control_file = {
            "traces": {"provider": {"type": "python", "module": MODULE, "arguments": arguments(collector.url + "/otlp")}},
            "guard": {"provider": {"type": "python", "module": "chaosfaultline.integrations.safeguard",
                                   "arguments": {"probe": guard, "interval": 0.1, "failure_threshold": 1}}}}
        traced = chaos.run(experiment, control_file=control_file, env={"FL_OTLP_TOKEN": f"Bearer {TOKEN}"})
    finally:
        collector.close()
    assert traced.journal is not None and traced.journal["status"] == "interrupted", traced.stderr
    spans = exported(collector)[1]
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"interrupted", "method", "long"}
    assert by_name["interrupted"]["status"] == {"code": 2, "message": "run interrupted"}
    assert attributes(by_name["interrupted"]["attributes"])["chaostoolkit.run.status"] == "interrupted"
    assert by_name["method"]["status"]["code"] == 2
    assert by_name["long"]["status"]["code"] == 2
    assert by_name["long"]["parentSpanId"] == by_name["method"]["spanId"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("failure", ["collector answers 500", "nothing listens", "token unset"])
def test_a_failed_export_never_changes_the_run(failure: str, chaos: Chaos) -> None:
    (experiment,) = [p for p in FIXTURES if p.name.endswith("override-hypothesis-runtime-strategy.json")]
    bare = chaos.run(experiment, control=False)
    collector = Collector(status=500)
    try:
        endpoint = f"http://127.0.0.1:{closed_port()}" if failure == "nothing listens" else collector.url + "/otlp"
        args = arguments(endpoint)
        if failure == "token unset":
            args["secret_headers"] = {"Authorization": {"env": "FL_OTLP_UNSET"}}
        traced = run(chaos, experiment, args)
    finally:
        collector.close()
    assert traced.journal is not None and bare.journal is not None
    assert (traced.journal["status"], traced.journal["deviated"], traced.returncode) == \
        (bare.journal["status"], bare.journal["deviated"], bare.returncode)
    assert [r["status"] for r in traced.journal["rollbacks"]] == [r["status"] for r in bare.journal["rollbacks"]]
    assert "opentelemetry traces: trace not exported" in traced.log
    assert len(collector.requests) == (1 if failure == "collector answers 500" else 0)
    if failure == "token unset":
        assert "FL_OTLP_UNSET" in traced.log
    assert TOKEN not in traced.log + traced.stdout + traced.stderr


def test_two_integrations_export_two_traces(chaos: Chaos, collector: Collector) -> None:
    (experiment,) = [p for p in FIXTURES if p.name.endswith("check-file-exists.json")]
    other = Collector()
    try:
        control_file = {
            name: {"provider": {"type": "python", "module": MODULE, "arguments": arguments(url + "/otlp", integration=name)}}
            for name, url in (("a", collector.url), ("b", other.url))}
        traced = chaos.run(experiment, control_file=control_file, env={"FL_OTLP_TOKEN": f"Bearer {TOKEN}"})
    finally:
        other.close()
    assert traced.journal is not None
    (_, _, first), (_, _, second) = collector.requests[0], other.requests[0]
    assert len(collector.requests) == len(other.requests) == 1
    spans_a = json.loads(first)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans_b = json.loads(second)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert spans_a[0]["traceId"] != spans_b[0]["traceId"]
    assert_trace_mirrors(traced.journal, spans_a)
    assert_trace_mirrors(traced.journal, spans_b)
