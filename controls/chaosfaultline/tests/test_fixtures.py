"""Every valid Chaos Toolkit fixture, run for real: with the control reporting to a runner
socket, the event stream covers every hook and the outcome is what plain `chaos run` gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnerside import Chaos, FakeRunner, assert_stream, fixture_experiments

FIXTURES = fixture_experiments()


def test_fixtures_are_found() -> None:
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("experiment", FIXTURES, ids=[p.stem.split("fixtures_")[-1] for p in FIXTURES])
def test_fixture_reports_every_hook(experiment: Path, chaos: Chaos, runner: FakeRunner) -> None:
    bare = chaos.run(experiment, control=False)
    assert bare.journal is not None, bare.stderr

    reported = chaos.run(experiment, arguments={"socket_path": runner.path, "execution_id": "ex-1"})
    journal = reported.journal
    assert journal is not None, reported.stderr
    assert (journal["status"], journal["deviated"]) == (bare.journal["status"], bare.journal["deviated"])
    assert reported.returncode == bare.returncode
    assert [r.get("status") for r in journal["rollbacks"]] == [
        r.get("status") for r in bare.journal["rollbacks"]
    ]

    assert_stream(runner, journal)
    assert runner.hellos and runner.hellos[0]["execution_id"] == "ex-1"
    assert runner.hellos[0]["protocol"] == 1
    assert journal["faultline"]["mode"] == "runner"
    assert journal["faultline"]["reporting"] == "ok"
    assert journal["faultline"]["interruption"] is None
    # the runner was asked before the experiment and before every activity
    hooks = [p["at"]["hook"] for p in runner.polls]
    assert hooks[0] == "before-experiment"
    assert hooks.count("before-activity") == len([e for e in runner.events if e["type"] == "activity-before"])


@pytest.mark.parametrize("experiment", FIXTURES, ids=[p.stem.split("fixtures_")[-1] for p in FIXTURES])
def test_unconfigured_control_changes_nothing(experiment: Path, chaos: Chaos) -> None:
    bare = chaos.run(experiment, control=False)
    quiet = chaos.run(experiment)  # control declared, nothing configured
    assert bare.journal is not None and quiet.journal is not None
    assert (quiet.journal["status"], quiet.journal["deviated"]) == (
        bare.journal["status"],
        bare.journal["deviated"],
    )
    assert quiet.returncode == bare.returncode
    assert "faultline" not in quiet.journal
