"""Signed webhook (Faultline SignedWebhook): POSTs run events as JSON with the header
``X-Faultline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

Receivers check with `verify`: the signature in constant time and `t` within a tolerance, so a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.request
from typing import Any

from chaoslib.exceptions import InvalidActivity

from chaosfaultline.integrations import IntegrationError, check_reference, check_url, resolve

logger = logging.getLogger("chaostoolkit")

HEADER = "X-Faultline-Signature"
EVENTS = ("run-started", "run-finished", "deviated", "interrupted")


def sign(key: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(key: bytes, body: bytes, header: str, now: float | None = None, tolerance: int = 300) -> bool:
    """True when `header` signs `body` with `key` and its time is within `tolerance` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        signature = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(key, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, signature)


def validate_control(control: dict[str, Any]) -> None:
    arguments = control.get("provider", {}).get("arguments", {})
    name = control.get("name")
    try:
        check_url(arguments.get("url"), "url")
        check_reference(arguments.get("signing_key"), "signing_key")
    except IntegrationError as error:
        raise InvalidActivity(f"control {name}: {error}") from None
    events = arguments.get("events", list(EVENTS))
    if not isinstance(events, list) or not all(event in EVENTS for event in events):
        raise InvalidActivity(f"control {name}: events must be among {', '.join(EVENTS)}")
    timeout = arguments.get("timeout", 10)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise InvalidActivity(f"control {name}: timeout must be 0-300 seconds")


def _send(event: str, payload: dict[str, Any], url: str, signing_key: Any, events: list[str], timeout: float,
          integration: str) -> None:
    if event not in events:
        return
    body = json.dumps({"type": event, "integration": integration, **payload}, sort_keys=True, default=str).encode()
    try:
        header = sign(resolve(signing_key), body, int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", HEADER: header})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except Exception as error:  # a webhook never fails the run
        logger.warning(f"webhook {integration}: {event} not delivered: {type(error).__name__}")


def before_experiment_control(context: Any, url: str, signing_key: Any, events: list[str] | None = None,
                              timeout: float = 10, integration: str = "", **kwargs: Any) -> None:
    title = context.get("title", "") if isinstance(context, dict) else ""
    _send("run-started", {"title": title}, url, signing_key, events or list(EVENTS), timeout, integration)


def after_experiment_control(context: Any, state: Any, url: str, signing_key: Any, events: list[str] | None = None,
                             timeout: float = 10, integration: str = "", **kwargs: Any) -> None:
    events = events or list(EVENTS)
    journal = state if isinstance(state, dict) else {}
    payload = {"title": context.get("title", "") if isinstance(context, dict) else "",
               "status": journal.get("status", ""), "deviated": bool(journal.get("deviated", False))}
    _send("run-finished", payload, url, signing_key, events, timeout, integration)
    if payload["deviated"]:
        _send("deviated", payload, url, signing_key, events, timeout, integration)
    if payload["status"] == "interrupted":
        _send("interrupted", payload, url, signing_key, events, timeout, integration)
