"""HTTP safeguard: probes during the whole run and interrupts it after `failure_threshold`
consecutive failures (Faultline HttpSafeguard).

chaostoolkit-addons' ``chaosaddons.controls.safeguards`` runs Chaos Toolkit probes, which can
neither read a secret from the environment per header nor count consecutive failures, hence
this module. It stops the run the same way: chaoslib's exit signals (SIGUSR1 graceful, with
rollbacks; SIGUSR2 without).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoslib.exceptions import InvalidActivity
from chaoslib.exit import exit_gracefully, exit_ungracefully

from chaosfaultline.integrations import IntegrationError, check_probe, run_probe

logger = logging.getLogger("chaostoolkit")

_stop = threading.Event()
_thread: threading.Thread | None = None
tripped: str | None = None


def validate_control(control: dict[str, Any]) -> None:
    arguments = control.get("provider", {}).get("arguments", {})
    try:
        check_probe(arguments.get("probe"))
    except IntegrationError as error:
        raise InvalidActivity(f"control {control.get('name')}: {error}") from None
    interval = arguments.get("interval", 5)
    if not isinstance(interval, (int, float)) or not 0 < interval <= 3600:
        raise InvalidActivity(f"control {control.get('name')}: interval must be 0-3600 seconds")
    threshold = arguments.get("failure_threshold", 1)
    if not isinstance(threshold, int) or not 1 <= threshold <= 1000:
        raise InvalidActivity(f"control {control.get('name')}: failure_threshold must be 1-1000")


def before_experiment_control(context: Any, probe: dict[str, Any], interval: float = 5, failure_threshold: int = 1,
                              skip_rollbacks: bool = False, **kwargs: Any) -> None:
    global _thread, tripped
    _stop.clear()
    tripped = None

    def watch() -> None:
        global tripped
        failures = 0
        while not _stop.is_set():
            try:
                failure = run_probe(probe)
            except IntegrationError as error:
                failure = str(error)
            failures = failures + 1 if failure else 0
            if failures >= failure_threshold:
                tripped = failure
                logger.error(f"safeguard tripped after {failures} failure(s): {failure}")
                (exit_ungracefully if skip_rollbacks else exit_gracefully)()
                return
            _stop.wait(interval)

    _thread = threading.Thread(target=watch, name="faultline-safeguard", daemon=True)
    _thread.start()


def after_experiment_control(context: Any, state: Any, **kwargs: Any) -> None:
    _stop.set()
    if _thread is not None:
        _thread.join(timeout=1)
