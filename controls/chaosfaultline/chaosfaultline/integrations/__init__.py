"""Controls rendered from Faultline integrations (SecretService RenderControls).

Arguments never hold a secret: a value that needs one is a reference, ``{"env": VAR}`` (the
secret is in environment variable VAR) or ``{"file_env": VAR}`` (VAR holds the path of a file
with the secret), resolved here when the control runs.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from typing import Any

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class IntegrationError(Exception):
    """An integration's arguments are malformed or its secret is missing (never quotes a secret)."""


def resolve(reference: Any) -> bytes:
    """The secret a reference names, as bytes."""
    if not isinstance(reference, dict) or len(reference) != 1:
        raise IntegrationError('a secret reference must be {"env": VAR} or {"file_env": VAR}')
    (kind, var), = reference.items()
    if kind not in ("env", "file_env") or not isinstance(var, str) or not var:
        raise IntegrationError('a secret reference must be {"env": VAR} or {"file_env": VAR}')
    value = os.environ.get(var)
    if value is None:
        raise IntegrationError(f"environment variable {var} (a secret reference) is not set")
    if kind == "env":
        return value.encode()
    try:
        with open(value, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise IntegrationError(f"the secret file named by {var} cannot be read: {error.strerror}") from None


def check_url(url: Any, what: str) -> None:
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s@]+", url):
        raise IntegrationError(f"{what} must be an http(s) URL")


def check_reference(reference: Any, what: str) -> None:
    if not (isinstance(reference, dict) and len(reference) == 1
            and next(iter(reference)) in ("env", "file_env") and isinstance(next(iter(reference.values())), str)):
        raise IntegrationError(f'{what} must be a secret reference {{"env": VAR}} or {{"file_env": VAR}}')


def check_probe(probe: Any) -> None:
    """Validates a rendered HttpProbe; raises chaoslib's InvalidActivity through callers."""
    if not isinstance(probe, dict):
        raise IntegrationError("probe must be an object")
    check_url(probe.get("url"), "probe.url")
    if probe.get("method", "GET") not in _METHODS:
        raise IntegrationError("probe.method must be an HTTP method")
    headers = probe.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise IntegrationError("probe.headers must map names to strings")
    secret_headers = probe.get("secret_headers", {})
    if not isinstance(secret_headers, dict):
        raise IntegrationError("probe.secret_headers must be an object")
    for name, reference in secret_headers.items():
        check_reference(reference, f"probe.secret_headers[{name}]")
    timeout = probe.get("timeout", 10)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise IntegrationError("probe.timeout must be 0-300 seconds")
    statuses = probe.get("expected_status", [])
    if not isinstance(statuses, list) or not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
        raise IntegrationError("probe.expected_status must be a list of HTTP status codes")
    regex = probe.get("expected_body_regex", "")
    try:
        re.compile(regex)
    except (re.error, TypeError):
        raise IntegrationError("probe.expected_body_regex is not a regular expression") from None


def run_probe(probe: dict[str, Any]) -> str | None:
    """Sends the probe's request; None when it passes, else why not (no secret in the text)."""
    headers = dict(probe.get("headers", {}))
    for name, reference in probe.get("secret_headers", {}).items():
        headers[name] = resolve(reference).decode("latin-1")
    body = probe.get("body", "")
    request = urllib.request.Request(probe["url"], method=probe.get("method", "GET"), headers=headers,
                                     data=body.encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=probe.get("timeout", 10)) as response:
            status, text = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read(1 << 20)
    except (urllib.error.URLError, OSError) as error:
        return f"{probe['url']} did not answer: {getattr(error, 'reason', error)}"
    expected = probe.get("expected_status") or []
    if (expected and status not in expected) or (not expected and not 200 <= status < 300):
        return f"{probe['url']} answered {status}"
    regex = probe.get("expected_body_regex", "")
    if regex and not re.search(regex, text.decode("utf-8", "replace")):
        return f"{probe['url']}: the body does not match {regex!r}"
    return None
