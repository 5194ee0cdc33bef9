"""A sick, absent or hostile runner never fails the experiment, and chaoslib's quirks do not
leak into the event stream."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from runnerside import Chaos, FakeRunner, answer, assert_stream, flow_experiment


def at(poll: dict[str, Any]) -> str | None:
    return poll["at"].get("activity")


def ran(journal: dict[str, Any]) -> list[str]:
    return [r["activity"]["name"] for r in journal["run"]]


def test_runner_dies_mid_run(chaos: Chaos, runner: FakeRunner) -> None:
    def policy(poll: dict[str, Any], r: FakeRunner) -> bytes | None:
        if at(poll) == "second":
            r.die()
            return None
        return answer(poll, "run")

    runner.policy = policy
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    journal = done.journal
    assert journal is not None, done.stderr
    assert (journal["status"], done.returncode) == ("completed", 0)
    assert ran(journal) == ["first", "second"]
    assert (chaos.workdir / "undo.marker").exists()
    assert journal["faultline"]["reporting"] == "silenced"
    # what arrived before the crash is a clean prefix
    assert [e["seq"] for e in runner.events] == list(range(1, len(runner.events) + 1))
    assert runner.events[-1]["payload"].get("name") == "first"


def test_reconnect_replays_events_and_the_runner_dedups(chaos: Chaos, runner: FakeRunner) -> None:
    def policy(poll: dict[str, Any], r: FakeRunner) -> bytes | None:
        if at(poll) == "second" and not r.state.get("dropped"):
            r.state["dropped"] = True
            r.drop_connections()
            return None
        return answer(poll, "run")

    runner.policy = policy
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path, "execution_id": "e"})
    journal = done.journal
    assert journal is not None
    assert (journal["status"], done.returncode) == ("completed", 0)
    assert len(runner.hellos) == 2 and runner.hellos[1]["execution_id"] == "e"
    assert runner.duplicates > 0
    assert journal["faultline"]["reporting"] == "ok"
    assert_stream(runner, journal)  # complete: nothing lost across the reconnect


def test_runner_socket_missing(chaos: Chaos, short_tmp: Any) -> None:
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": str(short_tmp / "nobody.sock")})
    assert done.journal is not None
    assert (done.journal["status"], done.returncode) == ("completed", 0)
    assert done.journal["faultline"]["reporting"] == "silenced"


def test_nothing_configured_means_no_op(chaos: Chaos, runner: FakeRunner) -> None:
    done = chaos.run(flow_experiment(chaos), env={"FAULTLINE_TOKEN": "only-a-token"})
    assert done.journal is not None
    assert (done.journal["status"], done.returncode) == ("completed", 0)
    assert "faultline" not in done.journal
    assert ran(done.journal) == ["first", "second"]
    assert runner.events == [] and runner.hellos == []


def test_environment_configures_the_control(chaos: Chaos, runner: FakeRunner) -> None:
    done = chaos.run(
        flow_experiment(chaos),
        env={"FAULTLINE_RUNNER_SOCKET": runner.path, "FAULTLINE_EXECUTION_ID": "from-env"},
    )
    assert done.journal is not None
    assert_stream(runner, done.journal)
    assert runner.hellos[0]["execution_id"] == "from-env"


def test_arguments_win_over_the_environment(chaos: Chaos, runner: FakeRunner, short_tmp: Any) -> None:
    other = FakeRunner(str(short_tmp / "other.sock"))
    try:
        done = chaos.run(
            flow_experiment(chaos),
            arguments={"socket_path": runner.path, "execution_id": "from-args"},
            env={"FAULTLINE_RUNNER_SOCKET": other.path, "FAULTLINE_EXECUTION_ID": "from-env"},
        )
    finally:
        other.die()
    assert done.journal is not None
    assert_stream(runner, done.journal)
    assert runner.hellos[0]["execution_id"] == "from-args"
    assert other.events == [] and other.hellos == []


def garbage_then_run(poll: dict[str, Any], runner: FakeRunner) -> bytes:
    poll_id = poll["poll_id"]
    lines = [
        b"not json at all\n",
        b"\xff\xfe\xfd invalid utf-8\n",
        b"[1, 2, 3]\n",
        b"null\n",
        b'{"type": "state"}\n',
        json.dumps({"type": "state", "poll_id": poll_id - 1, "state": "terminate"}).encode() + b"\n",
        json.dumps({"type": "state", "poll_id": True, "state": "terminate"}).encode() + b"\n",
        json.dumps({"type": "state", "poll_id": str(poll_id), "state": "terminate"}).encode() + b"\n",
        json.dumps({"type": "other", "poll_id": poll_id, "state": "terminate"}).encode() + b"\n",
        b"x" * (2 * 1024 * 1024) + b"\n",  # over the 1 MiB line limit
        b"\n",
    ]
    return b"".join(lines) + answer(poll, "run")


def unknown_state(poll: dict[str, Any], runner: FakeRunner) -> bytes:
    return answer(poll, "explode", rollbacks="yes", pause_until_us="soon")


def wrong_types(poll: dict[str, Any], runner: FakeRunner) -> bytes:
    return json.dumps(
        {"type": "state", "poll_id": poll["poll_id"], "state": ["terminate"], "reason": {"x": 1}}
    ).encode() + b"\n"


def endless_line(poll: dict[str, Any], runner: FakeRunner) -> bytes:
    return b"{" * (3 * 1024 * 1024)  # no newline, ever


@pytest.mark.parametrize("policy", [garbage_then_run, unknown_state, wrong_types, endless_line])
def test_hostile_answers_are_ignored(chaos: Chaos, runner: FakeRunner, policy: Any) -> None:
    runner.policy = policy
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    journal = done.journal
    assert journal is not None, done.stderr
    assert (journal["status"], done.returncode) == ("completed", 0)
    assert ran(journal) == ["first", "second"]
    assert journal["faultline"]["interruption"] is None
    assert journal["faultline"]["pauses"] == []
    if policy is endless_line:
        # polls give up after three timeouts; events still flow
        assert journal["faultline"]["polling"] == "off"
        assert len(runner.polls) == 3
        assert_stream(runner, journal)
    else:
        # every answer was recognised as such, so reporting stayed healthy throughout
        assert (journal["faultline"]["reporting"], journal["faultline"]["polling"]) == ("ok", "ok")
        assert_stream(runner, journal)


def test_double_firing_activity_hooks_are_reported_once(chaos: Chaos, runner: FakeRunner) -> None:
    """chaoslib calls a top-level automatic control's activity hooks twice when two other
    controls apply to the activity (here: two global controls without hooks)."""
    experiment = flow_experiment(
        chaos,
        controls=[{"name": "faultline", "provider": {"type": "python", "module": "chaosfaultline.control"}}],
    )
    inert = {"type": "python", "module": "json"}
    done = chaos.run(
        experiment,
        control_file={"first-inert": {"provider": inert}, "second-inert": {"provider": inert}},
        env={"FAULTLINE_RUNNER_SOCKET": runner.path},
    )
    journal = done.journal
    assert journal is not None
    fired = len(re.findall(r"Applying before-control 'faultline' on 'activity'", done.log))
    activities = len(ran(journal)) + 2 + len(journal["rollbacks"])  # + the two probe runs
    assert fired == 2 * activities, "the quirk did not reproduce: this test proves nothing"
    events = assert_stream_without_loading(runner, journal)
    assert len([e for e in events if e["type"] == "activity-before"]) == activities
    polls = [p for p in runner.polls if p["at"]["hook"] == "before-activity"]
    assert len(polls) == activities


def assert_stream_without_loading(runner: FakeRunner, journal: dict[str, Any]) -> list[dict[str, Any]]:
    """Experiment-level controls do not see the loader hooks: prepend them and check the rest."""
    fake = [{"seq": 0, "type": t, "ts_us": 0, "payload": {}} for t in ("loading-before", "loading-after")]
    events = list(runner.events)
    runner.events[:] = fake + events
    for i, e in enumerate(runner.events, 1):
        e["seq"] = i
    journal = dict(journal, faultline=dict(journal["faultline"], last_seq=len(runner.events)))
    return assert_stream(runner, journal)


def test_large_outputs_are_truncated_with_a_marker(chaos: Chaos, runner: FakeRunner) -> None:
    big = {"type": "action", "name": "big", "provider": {"type": "process", "path": "seq", "arguments": "1 50000"}}
    done = chaos.run(
        flow_experiment(chaos, method=[big]),
        arguments={"socket_path": runner.path, "output_limit": 1000},
    )
    assert done.journal is not None
    assert_stream(runner, done.journal)
    (after,) = [e for e in runner.of_type("activity-after") if e["payload"]["name"] == "big"]
    payload = after["payload"]
    assert payload["output_truncated"] is True
    assert payload["output"].endswith("…[truncated]")
    assert len(payload["output"].encode()) <= 1000 + len("…[truncated]".encode())
    full = json.dumps(done.journal["run"][0]["output"], ensure_ascii=False)
    assert payload["output_bytes"] == len(full.encode())
    assert full.startswith(payload["output"].removesuffix("…[truncated]"))
    small = [e for e in runner.of_type("activity-after") if e["payload"]["name"] == "check"]
    assert small and all(e["payload"]["output"] is True for e in small)


def test_background_activities_are_reported(chaos: Chaos, runner: FakeRunner) -> None:
    method = [
        {"type": "action", "name": f"bg{i}", "background": True,
         "provider": {"type": "process", "path": "touch", "arguments": f"bg{i}.marker"}}
        for i in range(3)
    ]
    done = chaos.run(flow_experiment(chaos, method=method), arguments={"socket_path": runner.path})
    assert done.journal is not None and done.journal["status"] == "completed"
    befores = runner.of_type("activity-before")
    assert sorted(e["payload"]["name"] for e in befores if e["payload"]["background"]) == ["bg0", "bg1", "bg2"]
    afters = {e["payload"]["name"]: e["payload"]["status"] for e in runner.of_type("activity-after")}
    assert all(afters[f"bg{i}"] == "succeeded" for i in range(3))
    assert [e["seq"] for e in runner.events] == list(range(1, len(runner.events) + 1))


FAULTLINE_IN_EXPERIMENT = [
    {"name": "faultline", "provider": {"type": "python", "module": "chaosfaultline.control"}}
]


def test_exported_experiment_with_the_control_but_no_configuration(chaos: Chaos) -> None:
    """How an experiment leaves Faultline: the control declared in it, run with plain
    `chaos run` and nothing configured."""
    experiment = flow_experiment(chaos, controls=FAULTLINE_IN_EXPERIMENT)
    bare = chaos.run(flow_experiment(chaos), control=False)
    done = chaos.run(experiment, control=False)
    assert bare.journal is not None and done.journal is not None
    assert (done.journal["status"], done.journal["deviated"], done.returncode) == (
        bare.journal["status"],
        bare.journal["deviated"],
        bare.returncode,
    )
    assert ran(done.journal) == ["first", "second"]
    assert [r["activity"]["name"] for r in done.journal["rollbacks"]] == ["undo"]
    assert "faultline" not in done.journal


def test_declared_both_globally_and_in_the_experiment_reports_once(chaos: Chaos, runner: FakeRunner) -> None:
    """The runner's global control over an exported experiment that declares it too."""
    runner.policy = lambda poll, r: (
        answer(poll, "terminate", rollbacks=True) if at(poll) == "second" else answer(poll, "run")
    )
    experiment = flow_experiment(chaos, controls=FAULTLINE_IN_EXPERIMENT)
    done = chaos.run(experiment, arguments={"socket_path": runner.path, "execution_id": "e"})
    journal = done.journal
    assert journal is not None
    assert journal["status"] == "interrupted"
    assert done.log.count("Applying before-control 'faultline' on 'experiment'") == 2, "not declared twice"
    events = assert_stream(runner, journal)
    assert [e["type"] for e in events].count("experiment-before") == 1
    assert [e["type"] for e in events].count("method-before") == 1
    assert journal["faultline"]["rollbacks"]["managed"] is True
    assert (chaos.workdir / "undo.marker").exists()
