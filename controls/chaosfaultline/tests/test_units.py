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
