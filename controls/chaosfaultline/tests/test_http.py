"""Outside a runner: events go to the Gateway's JSON API, as PROTOCOL.md specifies it."""

from __future__ import annotations

import json

import pytest

from runnerside import Chaos, Gateway, flow_experiment, journal_activities


def test_reports_to_the_gateway(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    env = {"FAULTLINE_URL": url + "/", "FAULTLINE_TOKEN": "s3cret", "FAULTLINE_EXECUTION_ID": "ex/1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    journal = done.journal
    assert journal is not None
    assert (journal["status"], done.returncode) == ("completed", 0)
    assert state.requests
    assert [r["path"] for r in state.requests][-1] == "/api/v1/executions/ex%2F1/complete"
    assert {r["path"] for r in state.requests[:-1]} == {"/api/v1/executions/ex%2F1/events"}
    assert all(r["authorization"] == "Bearer s3cret" for r in state.requests)
    assert all(r["content_type"] == "application/json" for r in state.requests)
    events = state.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[:3] == ["loading-before", "loading-after", "experiment-before"]
    assert types[-1] == "experiment-after"
    assert events[-1]["payload"]["status"] == "completed"
    names = [(e["payload"]["name"], e["payload"]["status"]) for e in events if e["type"] == "activity-after"]
    assert names == journal_activities(journal)
    assert journal["faultline"]["mode"] == "http"
    assert journal["faultline"]["execution_id"] == "ex/1"
    assert "s3cret" not in json.dumps(journal)
    # Nobody else knows how an external run ended: the journal itself completes it.
    completed = state.requests[-1]["body"]["journal"]
    assert (completed["status"], completed["deviated"]) == ("completed", False)
    assert [a["activity"]["name"] for a in completed["run"]] == [a["activity"]["name"] for a in journal["run"]]
    assert completed["faultline"]["last_seq"] == journal["faultline"]["last_seq"]


def test_nul_in_output_reaches_the_gateway_as_replacement_character(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    """Postgres jsonb cannot store U+0000: sent as-is, the Gateway would refuse every batch and
    the journal, and the run would go unrecorded. The journal on disk keeps the NUL."""
    state, url = gateway
    probe = {"type": "probe", "name": "nul", "provider": {"type": "process", "path": "printf", "arguments": ["a\\0b"]}}
    literal = {"type": "probe", "name": "text", "provider": {"type": "process", "path": "printf", "arguments": ["%s", "x\\u0000"]}}
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-nul"}
    done = chaos.run(flow_experiment(chaos, method=[probe, literal]), env=env)
    assert done.journal is not None and done.journal["status"] == "completed"
    assert [a["output"]["stdout"] for a in done.journal["run"]] == ["a\0b", "x\\u0000"]
    assert state.requests and all(r["status"] < 300 for r in state.requests)
    for request in state.requests:
        assert "\\x00" not in repr(request["body"])
    after = {e["payload"]["name"]: e["payload"] for e in state.events() if e["type"] == "activity-after"}
    outputs = {name: after[name]["output"]["stdout"] for name in ("nul", "text")}
    assert outputs == {"nul": "a\ufffdb", "text": "x\\u0000"}
    completed = state.requests[-1]["body"]["journal"]
    assert [a["output"]["stdout"] for a in completed["run"]] == ["a\ufffdb", "x\\u0000"]


def test_creates_the_execution_from_an_experiment_id(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXPERIMENT_ID": "exp-7"}
    done = chaos.run(flow_experiment(chaos), env=env)
    assert done.journal is not None and done.journal["status"] == "completed"
    assert state.requests[0]["path"] == "/api/v1/experiments/exp-7/executions"
    assert state.requests[0]["body"] == {"external": True}
    assert {r["path"] for r in state.requests[1:-1]} == {"/api/v1/executions/ex-created/events"}
    assert state.requests[-1]["path"] == "/api/v1/executions/ex-created/complete"
    assert state.events()[-1]["type"] == "experiment-after"


@pytest.mark.parametrize(("status", "requests"), [(401, 1), (500, 3)])
def test_gateway_errors_never_fail_the_run(chaos: Chaos, gateway: tuple[Gateway, str], status: int, requests: int) -> None:
    """A 401 is final (one request, then nothing); a 500 is retried until three failures in a row."""
    state, url = gateway
    state.status = status
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    assert done.journal is not None
    assert (done.journal["status"], done.returncode) == ("completed", 0)
    assert done.journal["faultline"]["reporting"] == "silenced"
    assert len(state.requests) == requests


def test_gateway_without_an_id_in_its_answer(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    state.created_id = 42
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXPERIMENT_ID": "exp-7"}
    done = chaos.run(flow_experiment(chaos), env=env)
    assert done.journal is not None and done.journal["status"] == "completed"
    assert all(r["path"].endswith("/executions") for r in state.requests)


def test_unreachable_gateway(chaos: Chaos) -> None:
    env = {"FAULTLINE_URL": "http://127.0.0.1:9", "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    assert done.journal is not None
    assert (done.journal["status"], done.returncode) == ("completed", 0)
    assert done.journal["faultline"]["reporting"] == "silenced"


def test_url_without_token_is_off(chaos: Chaos, gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    done = chaos.run(flow_experiment(chaos), env={"FAULTLINE_URL": url, "FAULTLINE_EXECUTION_ID": "ex-1"})
    assert done.journal is not None and done.journal["status"] == "completed"
    assert "faultline" not in done.journal
    assert state.requests == []


@pytest.mark.parametrize("status", [302, 307])
def test_redirects_are_not_followed(chaos: Chaos, gateway: tuple[Gateway, str], status: int) -> None:
    """Following one would send the bearer token wherever the Location points."""
    state, url = gateway
    state.status = status
    env = {"FAULTLINE_URL": url, "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "ex-1"}
    done = chaos.run(flow_experiment(chaos), env=env)
    assert done.journal is not None and done.journal["status"] == "completed"
    assert done.journal["faultline"]["reporting"] == "silenced"
    assert state.requests and not any(r["path"].startswith("/elsewhere") for r in state.requests)
