"""HTTP pre-check: the run starts only when the probe passes (Faultline HttpPreCheck)."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import InterruptExecution, InvalidActivity

from chaosfaultline.integrations import IntegrationError, check_probe, run_probe


def validate_control(control: dict[str, Any]) -> None:
    try:
        check_probe(control.get("provider", {}).get("arguments", {}).get("probe"))
    except IntegrationError as error:
        raise InvalidActivity(f"control {control.get('name')}: {error}") from None


def before_experiment_control(context: Any, probe: dict[str, Any], **kwargs: Any) -> None:
    try:
        failure = run_probe(probe)
    except IntegrationError as error:
        failure = str(error)
    if failure:
        raise InterruptExecution(f"pre-check failed: {failure}")
