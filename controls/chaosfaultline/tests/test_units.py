"""The pure parts: configuration precedence, answer parsing, truncation, rollback decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chaoslib.run import EventHandlerRegistry, RunEventHandler, run_rollback

from chaosfaultline.config import Mode, resolve
from chaosfaultline.reporter import TRUNCATION_MARKER, Reporter, rollbacks_by_strategy
from chaosfaultline.transport import Answer, encode


def test_socket_from_arguments_wins_over_environment() -> None:
    config = resolve(
        {"socket_path": "/a.sock", "execution_id": "arg"},
        {"FAULTLINE_RUNNER_SOCKET": "/b.sock", "FAULTLINE_EXECUTION_ID": "env"},
    )
    assert (config.mode, config.socket_path, config.execution_id) == (Mode.RUNNER, "/a.sock", "arg")


def test_environment_fills_what_arguments_leave_out() -> None:
    config = resolve({"socket_path": ""}, {"FAULTLINE_RUNNER_SOCKET": "/b.sock", "FAULTLINE_EXECUTION_ID": "env"})
    assert (config.mode, config.socket_path, config.execution_id) == (Mode.RUNNER, "/b.sock", "env")


def test_runner_socket_wins_over_the_gateway() -> None:
    env = {"FAULTLINE_RUNNER_SOCKET": "/s", "FAULTLINE_URL": "http://x", "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "e"}
    assert resolve({}, env).mode is Mode.RUNNER


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"FAULTLINE_URL": "http://x/", "FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "e"}, Mode.HTTP),
        ({"FAULTLINE_URL": "http://x", "FAULTLINE_TOKEN": "t", "FAULTLINE_EXPERIMENT_ID": "x"}, Mode.HTTP),
        ({"FAULTLINE_URL": "http://x", "FAULTLINE_TOKEN": "t"}, Mode.OFF),  # no id
        ({"FAULTLINE_URL": "http://x", "FAULTLINE_EXECUTION_ID": "e"}, Mode.OFF),  # no token
        ({"FAULTLINE_TOKEN": "t", "FAULTLINE_EXECUTION_ID": "e"}, Mode.OFF),  # no url
        ({}, Mode.OFF),
    ],
)
def test_modes(env: dict[str, str], mode: Mode) -> None:
    config = resolve({}, env)
    assert config.mode is mode
    if mode is Mode.HTTP:
        assert config.url == "http://x"


def test_token_never_comes_from_arguments() -> None:
    config = resolve({"url": "http://x", "token": "t", "execution_id": "e"}, {})
    assert config.mode is Mode.OFF


@pytest.mark.parametrize("raw", ["abc", "-5", "0", None, ""])
def test_invalid_limits_fall_back_to_defaults(raw: Any) -> None:
    config = resolve({"output_limit": raw, "max_pause_seconds": raw}, {})
    assert (config.output_limit, config.max_pause_seconds) == (4096, 3600.0)


def test_limits_from_environment() -> None:
    config = resolve({}, {"FAULTLINE_OUTPUT_LIMIT": "10", "FAULTLINE_MAX_PAUSE_SECONDS": "2.5"})
    assert (config.output_limit, config.max_pause_seconds) == (10, 2.5)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"type": "state", "poll_id": 3, "state": "run"}, Answer("run")),
        (
            {"type": "state", "poll_id": 3, "state": "terminate", "rollbacks": True, "reason": "r"},
            Answer("terminate", rollbacks=True, reason="r"),
        ),
        (
            {"type": "state", "poll_id": 3, "state": "pause", "pause_until_us": 5, "extra": 1},
            Answer("pause", pause_until_us=5),
        ),
        ({"type": "state", "poll_id": 3, "state": "pause", "pause_until_us": True}, Answer("pause")),
        ({"type": "state", "poll_id": 3, "state": "terminate", "rollbacks": "yes"}, Answer("terminate")),
        ({"type": "state", "poll_id": 3, "state": "nope"}, Answer("run")),
        ({"type": "state", "poll_id": 2, "state": "terminate"}, None),
        ({"type": "state", "poll_id": True, "state": "terminate"}, None),
        ({"type": "state", "poll_id": 3.0, "state": "terminate"}, Answer("terminate")),
        ({"poll_id": 3, "state": "terminate"}, None),
        ([1, 2], None),
        ("state", None),
        (None, None),
    ],
)
def test_answer_parsing(obj: Any, expected: Answer | None) -> None:
    assert Answer.parse(obj, 3) == expected


def test_reason_is_clipped() -> None:
    parsed = Answer.parse({"type": "state", "poll_id": 1, "state": "terminate", "reason": "x" * 5000}, 1)
    assert parsed is not None and parsed.reason is not None and len(parsed.reason) == 1000


def reporter(limit: int = 16) -> Reporter:
    return Reporter(resolve({"output_limit": limit}, {}))


def test_small_outputs_pass_through() -> None:
    assert reporter().output_fields({"a": 1}) == {"output": {"a": 1}, "output_truncated": False}


def test_large_outputs_are_clipped_on_a_character_boundary() -> None:
    fields = reporter(16).output_fields("é" * 100)
    assert fields["output_truncated"] is True
    assert fields["output"].endswith(TRUNCATION_MARKER)
    assert len(fields["output"].removesuffix(TRUNCATION_MARKER).encode()) <= 16
    assert fields["output_bytes"] == len(json.dumps("é" * 100, ensure_ascii=False).encode())


def test_unencodable_outputs_do_not_break_reporting() -> None:
    fields = reporter(1000).output_fields({("tuple", "key"): float("nan")})
    assert isinstance(fields["output"], str)
    encode({"payload": fields})


def test_a_line_never_contains_a_raw_newline() -> None:
    line = encode({"payload": {"text": "a\nb\r\u2028c"}})
    assert line.count(b"\n") == 1 and line.endswith(b"\n")


class Played(RunEventHandler):
    def __init__(self) -> None:
        self.played = False

    def start_rollbacks(self, experiment: Any) -> None:
        self.played = True


@pytest.mark.parametrize("strategy", ["default", "always", "never", "deviated", "bogus"])
@pytest.mark.parametrize("status", [None, "completed", "failed", "aborted", "interrupted"])
@pytest.mark.parametrize("deviated", [False, True])
def test_rollback_decision_matches_chaoslib(strategy: str, status: str | None, deviated: bool) -> None:
    """Our copy of chaoslib's decision must agree with chaoslib itself."""
    registry = EventHandlerRegistry()
    handler = Played()
    registry.register(handler)
    journal = {"status": status, "deviated": deviated, "rollbacks": []}
    run_rollback(strategy, None, {"title": "t", "rollbacks": []}, journal, {}, {}, registry, None)
    assert rollbacks_by_strategy(strategy, status, deviated) is handler.played


class ScriptedTransport:
    """Answers polls from a script; records events. For the reporter's own logic."""

    def __init__(self, answers: list[Answer | None]) -> None:
        self.answers = answers
        self.events: list[dict[str, Any]] = []
        self.polls: list[dict[str, Any]] = []
        self.silenced = False
        self.polling = True

    def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def poll(self, at: dict[str, Any]) -> Answer | None:
        self.polls.append(at)
        return self.answers.pop(0) if self.answers else Answer("run")

    def flush(self) -> None:
        pass

    def complete(self, journal: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def scripted(answers: list[Answer | None], **arguments: Any) -> tuple[Reporter, ScriptedTransport]:
    transport = ScriptedTransport(answers)
    config = resolve({"socket_path": "/unused", **arguments}, {})
    return Reporter(config, transport=transport, sleep=lambda s: None), transport


def kinds(transport: ScriptedTransport) -> list[str]:
    return [e["type"] for e in transport.events]


@pytest.mark.parametrize("until", [0, -5, 1])
def test_pause_until_the_past_ends_at_once(until: int) -> None:
    reporter, transport = scripted([Answer("pause", pause_until_us=until)])
    reporter.checkpoint({"hook": "before-activity"})
    assert len(transport.polls) == 1
    assert transport.events[-1]["payload"]["outcome"] == "timed-out"


def test_pause_polls_until_run() -> None:
    reporter, transport = scripted([Answer("pause"), None, Answer("pause"), Answer("run")])
    reporter.checkpoint({"hook": "before-activity"})
    assert len(transport.polls) == 4
    assert kinds(transport) == ["paused", "resumed"]
    assert transport.events[-1]["payload"]["outcome"] == "resumed"


def test_pause_ends_when_polling_becomes_impossible() -> None:
    reporter, transport = scripted([Answer("pause"), None])
    transport.polling = False
    reporter.checkpoint({"hook": "before-activity"})
    assert transport.events[-1]["payload"]["outcome"] == "runner-lost"


def test_terminate_raises_once_and_reports_once() -> None:
    from chaoslib.exceptions import InterruptExecution

    reporter, transport = scripted([Answer("terminate", reason="r"), Answer("terminate", reason="r")])
    for _ in range(2):
        with pytest.raises(InterruptExecution, match="r"):
            reporter.checkpoint({"hook": "before-activity"})
    assert kinds(transport) == ["terminate-requested"]


@pytest.mark.parametrize(("rollbacks", "raises"), [(None, False), (True, False), (False, True)])
def test_terminate_during_rollbacks(rollbacks: bool | None, raises: bool) -> None:
    from chaoslib.exceptions import InterruptExecution

    reporter, transport = scripted([Answer("terminate", rollbacks=rollbacks)])
    reporter.enter_phase("rollbacks")
    if raises:
        with pytest.raises(InterruptExecution):
            reporter.checkpoint({"hook": "before-activity"})
    else:
        reporter.checkpoint({"hook": "before-activity"})  # the rollbacks carry on


def test_hooks_fired_twice_report_once() -> None:
    reporter, transport = scripted([])
    activity = {"name": "a", "type": "action"}
    run = {"status": "succeeded", "duration": 0.1, "output": None}
    for _ in range(2):
        reporter.before_activity(activity)
    for _ in range(2):
        reporter.after_activity(activity, run)
    assert kinds(transport) == ["activity-before", "activity-after"]
    assert len(transport.polls) == 1
    assert [e["seq"] for e in transport.events] == [1, 2]


def test_events_after_close_are_dropped() -> None:
    reporter, transport = scripted([])
    reporter.close()
    reporter.before_loading("x")
    assert transport.events == []


def test_an_event_over_the_line_limit_keeps_its_seq_but_drops_its_payload() -> None:
    reporter, transport = scripted([], output_limit=4 * 1024 * 1024)
    activity = {"name": "a", "type": "action"}
    reporter.before_activity(activity)
    reporter.after_activity(activity, {"status": "succeeded", "output": "x" * 2_000_000})
    (after,) = [e for e in transport.events if e["type"] == "activity-after"]
    assert after["payload"] == {"dropped": "payload too large"}
    assert after["seq"] == 2
    assert len(encode(after)) < 1024 * 1024


def test_an_unencodable_payload_is_dropped_not_sent_as_invalid_json() -> None:
    reporter, transport = scripted([])
    reporter.emit("activity-after", {"duration": float("nan"), ("odd", "key"): 1})  # type: ignore[dict-item]
    assert transport.events[0]["payload"] == {"dropped": "payload not encodable"}
    json.loads(encode(transport.events[0]))


def test_a_payload_nested_too_deep_to_encode_keeps_its_seq() -> None:
    reporter, transport = scripted([])
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    reporter.emit("activity-after", {"output": deep})
    reporter.emit("activity-after", {"output": 1})
    assert [(e["seq"], e["payload"]) for e in transport.events] == [(1, {"dropped": "payload not encodable"}), (2, {"output": 1})]
