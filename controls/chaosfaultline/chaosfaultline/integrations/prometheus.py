"""Prometheus metrics (Faultline PrometheusMetrics): after the run, PUTs its metrics to a
Pushgateway under grouping key ``job``, in the text exposition format."""

from __future__ import annotations

import logging
import re
import urllib.parse
import urllib.request
from typing import Any

from chaoslib.exceptions import InvalidActivity

from chaosfaultline.integrations import IntegrationError, check_url

logger = logging.getLogger("chaostoolkit")

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def validate_control(control: dict[str, Any]) -> None:
    arguments = control.get("provider", {}).get("arguments", {})
    name = control.get("name")
    try:
        check_url(arguments.get("pushgateway_url"), "pushgateway_url")
    except IntegrationError as error:
        raise InvalidActivity(f"control {name}: {error}") from None
    job = arguments.get("job", "faultline")
    if not isinstance(job, str) or not 0 < len(job) <= 128 or "/" in job:
        raise InvalidActivity(f"control {name}: job must be 1-128 characters without /")
    labels = arguments.get("labels", {})
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and _LABEL.match(k) and not k.startswith("__") and isinstance(v, str) for k, v in labels.items()):
        raise InvalidActivity(f"control {name}: labels must map Prometheus label names to strings")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(journal: dict[str, Any], labels: dict[str, str]) -> str:
    """The run's metrics in the text format (what is pushed)."""
    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    braces = f"{{{rendered}}}" if rendered else ""
    status = str(journal.get("status", ""))
    metrics = [
        ("faultline_run_duration_seconds", "Wall time of the run.", float(journal.get("duration") or 0)),
        ("faultline_run_activities", "Activities run in the method.", float(len(journal.get("run") or []))),
        ("faultline_run_deviated", "1 when the steady-state hypothesis deviated.", 1.0 if journal.get("deviated") else 0.0),
        ("faultline_run_completed", "1 when the run completed.", 1.0 if status == "completed" else 0.0),
    ]
    lines = []
    for name, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{braces} {value}"]
    return "\n".join(lines) + "\n"


def after_experiment_control(context: Any, state: Any, pushgateway_url: str, job: str = "faultline",
                             labels: dict[str, str] | None = None, **kwargs: Any) -> None:
    body = exposition(state if isinstance(state, dict) else {}, labels or {}).encode()
    url = pushgateway_url.rstrip("/") + "/metrics/job/" + urllib.parse.quote(job, safe="")
    request = urllib.request.Request(url, data=body, method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except Exception as error:  # metrics never fail the run
        logger.warning(f"prometheus: metrics not pushed: {type(error).__name__}")
