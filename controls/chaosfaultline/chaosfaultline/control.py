"""The Chaos Toolkit control: ``{"type": "python", "module": "chaosfaultline.control"}``.

Declare it as a global control (``chaos run --control-file``) to see every hook, the loader
hooks included; as an experiment control it works too, without the loader hooks. chaoslib
passes extras (``state``, ``settings``, ...) only to parameters that name them, and the
control's ``provider.arguments`` as the remaining keyword arguments.

All hooks share one module-level :class:`Reporter`, so a control declared twice (globally and
in the experiment) reports once. Only ``InterruptExecution`` ever leaves a hook.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from chaoslib.exceptions import InterruptExecution

from chaosfaultline.config import Mode, resolve
from chaosfaultline.reporter import Reporter

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_hypothesis_control",
    "after_loading_experiment_control",
    "after_method_control",
    "after_rollback_control",
    "before_activity_control",
    "before_experiment_control",
    "before_hypothesis_control",
    "before_loading_experiment_control",
    "before_method_control",
    "before_rollback_control",
    "cleanup_control",
    "configure_control",
]

logger = logging.getLogger("chaostoolkit")

_lock = threading.Lock()
_reporter: Reporter | None = None

P = ParamSpec("P")
R = TypeVar("R")


def _current(arguments: Mapping[str, Any]) -> Reporter:
    """The run's reporter. The first configuration that reports anywhere wins; loader hooks
    run before ``configure_control``, so any hook may be the one that creates it."""
    global _reporter
    with _lock:
        if _reporter is None or (_reporter.config.mode is Mode.OFF and not _reporter.active):
            config = resolve(arguments, os.environ)
            if _reporter is None or config.mode is not Mode.OFF:
                _reporter = Reporter(config)
        return _reporter


def _guarded(hook: Callable[P, None]) -> Callable[P, None]:
    """A reporting bug must never change the run: only InterruptExecution gets through."""

    @functools.wraps(hook)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            hook(*args, **kwargs)
        except InterruptExecution:
            raise
        except Exception:
            logger.debug("faultline: %s failed", hook.__name__, exc_info=True)

    return wrapper


@_guarded
def configure_control(
    configuration: Any = None,
    secrets: Any = None,
    settings: Any = None,
    experiment: Any = None,
    event_registry: Any = None,
    **arguments: Any,
) -> None:
    _current(arguments).configure(settings, experiment, event_registry)


@_guarded
def before_loading_experiment_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_loading(context)


@_guarded
def after_loading_experiment_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_loading(state)


@_guarded
def before_experiment_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_experiment(context)


@_guarded
def after_experiment_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_experiment(context, state)


@_guarded
def before_hypothesis_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_hypothesis(context)


@_guarded
def after_hypothesis_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_hypothesis(context, state)


@_guarded
def before_method_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_method(context)


@_guarded
def after_method_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_method(context, state)


@_guarded
def before_rollback_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_rollbacks(context)


@_guarded
def after_rollback_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_rollbacks(context, state)


@_guarded
def before_activity_control(context: Any, **arguments: Any) -> None:
    _current(arguments).before_activity(context)


@_guarded
def after_activity_control(context: Any, state: Any = None, **arguments: Any) -> None:
    _current(arguments).after_activity(context, state)


@_guarded
def cleanup_control() -> None:
    with _lock:
        reporter = _reporter
    if reporter is not None:
        reporter.close()
