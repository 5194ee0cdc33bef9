"""Slack notification (Faultline SlackNotification): posts run events to a channel with
``chat.postMessage``, the bot token read from a secret reference."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from chaoslib.exceptions import InvalidActivity

from chaosfaultline.integrations import IntegrationError, check_reference, check_url, resolve

logger = logging.getLogger("chaostoolkit")

EVENTS = ("run-started", "run-finished", "deviated", "interrupted")


def validate_control(control: dict[str, Any]) -> None:
    arguments = control.get("provider", {}).get("arguments", {})
    name = control.get("name")
    try:
        check_url(arguments.get("api_url", "https://slack.com/api"), "api_url")
        check_reference(arguments.get("token"), "token")
    except IntegrationError as error:
        raise InvalidActivity(f"control {name}: {error}") from None
    channel = arguments.get("channel")
    if not isinstance(channel, str) or not 0 < len(channel) <= 80:
        raise InvalidActivity(f"control {name}: channel must be 1-80 characters")
    events = arguments.get("events", ["run-started", "run-finished"])
    if not isinstance(events, list) or not all(event in EVENTS for event in events):
        raise InvalidActivity(f"control {name}: events must be among {', '.join(EVENTS)}")


def _post(event: str, text: str, channel: str, token: Any, events: list[str], api_url: str) -> None:
    if event not in events:
        return
    try:
        body = json.dumps({"channel": channel, "text": text}).encode()
        request = urllib.request.Request(api_url.rstrip("/") + "/chat.postMessage", data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Authorization": "Bearer " + resolve(token).decode()})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read() or b"{}")
        if not answer.get("ok", False):
            logger.warning(f"slack: {event} not posted: {answer.get('error', 'unknown error')}")
    except Exception as error:  # a notification never fails the run
        logger.warning(f"slack: {event} not posted: {type(error).__name__}")


def before_experiment_control(context: Any, channel: str, token: Any, events: list[str] | None = None,
                              api_url: str = "https://slack.com/api", **kwargs: Any) -> None:
    title = context.get("title", "") if isinstance(context, dict) else ""
    _post("run-started", f":test_tube: chaos run started: {title}", channel, token,
          events or ["run-started", "run-finished"], api_url)


def after_experiment_control(context: Any, state: Any, channel: str, token: Any, events: list[str] | None = None,
                             api_url: str = "https://slack.com/api", **kwargs: Any) -> None:
    events = events or ["run-started", "run-finished"]
    title = context.get("title", "") if isinstance(context, dict) else ""
    journal = state if isinstance(state, dict) else {}
    status = journal.get("status", "unknown")
    _post("run-finished", f"chaos run finished ({status}): {title}", channel, token, events, api_url)
    if journal.get("deviated"):
        _post("deviated", f":warning: steady state deviated: {title}", channel, token, events, api_url)
    if status == "interrupted":
        _post("interrupted", f":octagonal_sign: chaos run interrupted: {title}", channel, token, events, api_url)
