"""Pause, resume and terminate, asked by the runner over the socket, in real `chaos run`s."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from runnerside import (
    Chaos,
    FakeRunner,
    answer,
    assert_stream,
    flow_experiment,
    wait_for,
)


def at(poll: dict[str, Any]) -> str | None:
    return poll["at"].get("activity")


def terminate_at(name: str, rollbacks: bool | None):
    """Answers `run` until the poll before activity `name`, then `terminate` for good."""

    def policy(poll: dict[str, Any], runner: FakeRunner) -> bytes:
        if at(poll) == name:
            runner.state["terminated"] = True
        if runner.state.get("terminated"):
            extra: dict[str, Any] = {"reason": "stop please"}
            if rollbacks is not None:
                extra["rollbacks"] = rollbacks
            return answer(poll, "terminate", **extra)
        return answer(poll, "run")

    return policy


def ran(journal: dict[str, Any]) -> list[str]:
    return [r["activity"]["name"] for r in journal["run"]]


@pytest.mark.parametrize(
    ("rollbacks", "strategy", "played"),
    [
        (False, None, False),
        (True, None, True),
        (None, None, False),  # no wish: the strategy (default) decides, as chaoslib would
        (None, "always", True),
        (False, "always", False),
        (True, "never", True),
    ],
)
def test_terminate_between_activities(
    chaos: Chaos, runner: FakeRunner, rollbacks: bool | None, strategy: str | None, played: bool
) -> None:
    runner.policy = terminate_at("second", rollbacks)
    extra = ["--rollback-strategy", strategy] if strategy else []
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path}, extra=extra)
    journal = done.journal
    assert journal is not None, done.stderr
    assert journal["status"] == "interrupted"
    assert done.returncode == 1
    assert ran(journal) == ["first"]
    assert not (chaos.workdir / "second.marker").exists()
    assert (chaos.workdir / "undo.marker").exists() is played
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == (["undo"] if played else [])
    assert journal["faultline"]["interruption"]["reason"] == "stop please"
    assert journal["faultline"]["interruption"]["rollbacks"] == rollbacks
    assert journal["faultline"]["rollbacks"]["played"] is played
    events = assert_stream(runner, journal)
    requested = [e for e in events if e["type"] == "terminate-requested"]
    assert len(requested) == 1 and requested[0]["payload"]["at"]["activity"] == "second"
    assert ("rollbacks-before" in [e["type"] for e in events]) is played


def test_terminate_before_the_experiment_starts(chaos: Chaos, runner: FakeRunner) -> None:
    runner.policy = lambda poll, r: answer(poll, "terminate", rollbacks=False)
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    assert done.journal is not None
    assert done.journal["status"] == "interrupted"
    assert done.journal["run"] == [] and done.journal["steady_states"]["before"] is None
    assert_stream(runner, done.journal)


@pytest.mark.parametrize("rollbacks", [True, False])
def test_runner_cancel_with_sigterm_during_a_long_activity(
    chaos: Chaos, runner: FakeRunner, rollbacks: bool
) -> None:
    """The runner's hard cancel: it records terminate (with its rollback wish), then sends
    SIGTERM; the control's before-rollbacks poll applies the wish."""
    long = {"type": "action", "name": "long", "provider": {"type": "process", "path": "sleep", "arguments": "300"}}
    then = {"type": "action", "name": "second", "provider": {"type": "process", "path": "touch", "arguments": "second.marker"}}
    runner.policy = terminate_at("never-matches", rollbacks)
    started = chaos.start(flow_experiment(chaos, method=[long, then]), arguments={"socket_path": runner.path})
    wait_for(lambda: runner.saw("activity-before", name="long"), "the long activity to start")
    runner.state["terminated"] = True
    started.process.send_signal(signal.SIGTERM)
    done = started.wait()
    journal = done.journal
    assert journal is not None, done.stderr
    assert journal["status"] == "interrupted"
    if tuple(int(p) for p in journal["chaoslib-version"].split(".")[:2]) >= (1, 45):
        assert journal["interruption"]["name"] == "SIGTERM"  # older libs do not record it
    assert "second" not in ran(journal)
    assert (chaos.workdir / "undo.marker").exists() is rollbacks
    assert journal["faultline"]["rollbacks"]["decided_by"] == "runner"
    assert_stream(runner, journal)


def test_pause_then_resume(chaos: Chaos, runner: FakeRunner) -> None:
    def policy(poll: dict[str, Any], r: FakeRunner) -> bytes:
        if at(poll) == "second":
            r.state["polls"] = r.state.get("polls", 0) + 1
            if r.state["polls"] <= 3:
                return answer(poll, "pause", reason="operator")
        return answer(poll, "run")

    runner.policy = policy
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    journal = done.journal
    assert journal is not None
    assert (journal["status"], done.returncode) == ("completed", 0)
    assert ran(journal) == ["first", "second"]
    assert runner.state["polls"] == 4
    events = assert_stream(runner, journal)
    types = [e["type"] for e in events]
    paused, resumed = types.index("paused"), types.index("resumed")
    second = [i for i, e in enumerate(events) if e["type"] == "activity-before" and e["payload"]["name"] == "second"][0]
    assert paused < resumed < second
    assert events[paused]["payload"]["reason"] == "operator"
    assert events[resumed]["payload"]["outcome"] == "resumed"
    assert [p["outcome"] for p in journal["faultline"]["pauses"]] == ["resumed"]


def test_pause_times_out_and_the_run_carries_on(chaos: Chaos, runner: FakeRunner) -> None:
    # A hostile "pause forever": capped by the control's own maximum.
    runner.policy = lambda poll, r: answer(poll, "pause", pause_until_us=10**30) if at(poll) == "second" else answer(poll, "run")
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path, "max_pause_seconds": 0.5})
    assert done.journal is not None
    assert done.journal["status"] == "completed"
    assert ran(done.journal) == ["first", "second"]
    assert [p["outcome"] for p in done.journal["faultline"]["pauses"]] == ["timed-out"]
    assert_stream(runner, done.journal)


def test_pause_until_a_past_instant_does_not_pause(chaos: Chaos, runner: FakeRunner) -> None:
    runner.policy = lambda poll, r: answer(poll, "pause", pause_until_us=1) if at(poll) == "second" else answer(poll, "run")
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    assert done.journal is not None and done.journal["status"] == "completed"
    assert [p["at"].get("activity") for p in runner.polls].count("second") == 1
    assert [p["outcome"] for p in done.journal["faultline"]["pauses"]] == ["timed-out"]


def test_terminate_while_paused(chaos: Chaos, runner: FakeRunner) -> None:
    def policy(poll: dict[str, Any], r: FakeRunner) -> bytes:
        if at(poll) == "second" or r.state.get("polls"):
            r.state["polls"] = r.state.get("polls", 0) + 1
            if r.state["polls"] <= 2:
                return answer(poll, "pause")
            return answer(poll, "terminate", rollbacks=True, reason="cancelled while paused")
        return answer(poll, "run")

    runner.policy = policy
    done = chaos.run(flow_experiment(chaos), arguments={"socket_path": runner.path})
    journal = done.journal
    assert journal is not None
    assert journal["status"] == "interrupted"
    assert ran(journal) == ["first"]
    assert (chaos.workdir / "undo.marker").exists()
    events = assert_stream(runner, journal)
    types = [e["type"] for e in events]
    assert types.index("paused") < types.index("resumed") < types.index("terminate-requested")
    assert [p["outcome"] for p in journal["faultline"]["pauses"]] == ["terminated"]
    assert journal["faultline"]["interruption"]["reason"] == "cancelled while paused"


def test_terminate_without_rollbacks_during_rollbacks_stops_them(chaos: Chaos, runner: FakeRunner) -> None:
    undo_twice = [
        {"type": "action", "name": n, "provider": {"type": "process", "path": "touch", "arguments": f"{n}.marker"}}
        for n in ("undo", "undo2")
    ]
    runner.policy = terminate_at("undo2", rollbacks=False)
    done = chaos.run(flow_experiment(chaos, rollbacks=undo_twice), arguments={"socket_path": runner.path})
    journal = done.journal
    assert journal is not None
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["undo"]
    assert not (chaos.workdir / "undo2.marker").exists()
    assert_stream(runner, journal)


def test_sigterm_while_paused(chaos: Chaos, runner: FakeRunner) -> None:
    """A hard cancel during a pause: chaoslib's SIGTERM handler interrupts the control's
    sleep; the wish given at the before-rollbacks poll still decides the rollbacks."""

    def policy(poll: dict[str, Any], r: FakeRunner) -> bytes:
        if poll["at"]["hook"] == "before-rollbacks":
            return answer(poll, "terminate", rollbacks=True)
        if at(poll) == "second":
            return answer(poll, "pause")
        return answer(poll, "run")

    runner.policy = policy
    started = chaos.start(flow_experiment(chaos), arguments={"socket_path": runner.path})
    wait_for(lambda: bool(runner.of_type("paused")), "the pause")
    started.process.send_signal(signal.SIGTERM)
    done = started.wait()
    journal = done.journal
    assert journal is not None
    assert journal["status"] == "interrupted"
    assert ran(journal) == ["first"]
    assert (chaos.workdir / "undo.marker").exists()
    assert [p["outcome"] for p in journal["faultline"]["pauses"]] == ["interrupted"]
    assert_stream(runner, journal)


@pytest.mark.parametrize(("strategy", "played"), [(None, False), ("always", True)])
def test_rollbacks_unmanaged_when_other_top_level_controls_hide_the_rollback_hooks(
    chaos: Chaos, runner: FakeRunner, strategy: str | None, played: bool
) -> None:
    """chaoslib calls only the experiment's own top-level controls at the method and
    rollback levels when it declares any: the control then cannot take the rollback decision
    and says so; the runner's fallback is `--rollback-strategy always`."""
    inert = [{"name": "inert", "provider": {"type": "python", "module": "json"}}]
    runner.policy = terminate_at("second", rollbacks=True)
    extra = ["--rollback-strategy", strategy] if strategy else []
    done = chaos.run(flow_experiment(chaos, controls=inert), arguments={"socket_path": runner.path}, extra=extra)
    journal = done.journal
    assert journal is not None
    assert journal["status"] == "interrupted"
    assert (chaos.workdir / "undo.marker").exists() is played
    assert journal["faultline"]["rollbacks"]["managed"] is False
    assert "top-level controls" in journal["faultline"]["rollbacks"]["unmanaged_because"]
    events = assert_stream(runner, journal)
    assert "method-before" not in [e["type"] for e in events]
