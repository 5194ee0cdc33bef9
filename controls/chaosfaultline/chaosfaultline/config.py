"""Where the control reports to, resolved once from provider arguments and the environment.

Precedence, per setting: the control's ``provider.arguments`` first, then the environment
variable, then the default. The mode follows from what is set: a runner socket wins over the
Gateway URL; with neither the control is off (every hook is a no-op). See PROTOCOL.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

logger = logging.getLogger("chaostoolkit")


class Mode(str, Enum):
    RUNNER = "runner"
    HTTP = "http"
    OFF = "off"


# argument name -> environment variable
ENV = {
    "socket_path": "FAULTLINE_RUNNER_SOCKET",
    "execution_id": "FAULTLINE_EXECUTION_ID",
    "url": "FAULTLINE_URL",
    "experiment_id": "FAULTLINE_EXPERIMENT_ID",
    "output_limit": "FAULTLINE_OUTPUT_LIMIT",
    "max_pause_seconds": "FAULTLINE_MAX_PAUSE_SECONDS",
}
# The token is read from the environment only: provider arguments end up in journals.
TOKEN_ENV = "FAULTLINE_TOKEN"


@dataclass(frozen=True)
class Config:
    mode: Mode
    socket_path: str | None = None
    execution_id: str | None = None
    url: str | None = None
    token: str | None = None
    experiment_id: str | None = None
    output_limit: int = 4096
    max_pause_seconds: float = 3600.0
    # Transport timings are not configurable from outside: they bound how much a sick
    # runner or Gateway can slow an experiment down.
    io_timeout_s: float = 1.0
    http_timeout_s: float = 2.0
    pause_poll_interval_s: float = 0.25
    max_consecutive_failures: int = 3


def _pick(name: str, arguments: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    value = arguments.get(name)
    if value is None or value == "":
        value = environ.get(ENV[name]) or None
    return value


def _positive(name: str, raw: Any, default: float, kind: type) -> Any:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        logger.warning("faultline: ignoring invalid %s=%r", name, raw)
        return default
    if value <= 0:
        logger.warning("faultline: ignoring non-positive %s=%r", name, raw)
        return default
    return value


def resolve(arguments: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
    socket_path = _pick("socket_path", arguments, environ)
    url = _pick("url", arguments, environ)
    token = environ.get(TOKEN_ENV) or None
    execution_id = _pick("execution_id", arguments, environ)
    experiment_id = _pick("experiment_id", arguments, environ)
    common: dict[str, Any] = {
        "output_limit": _positive(
            "output_limit", _pick("output_limit", arguments, environ), 4096, int
        ),
        "max_pause_seconds": _positive(
            "max_pause_seconds", _pick("max_pause_seconds", arguments, environ), 3600.0, float
        ),
    }
    if socket_path:
        return Config(
            mode=Mode.RUNNER,
            socket_path=str(socket_path),
            execution_id=str(execution_id) if execution_id else None,
            **common,
        )
    if url and token and (execution_id or experiment_id):
        return Config(
            mode=Mode.HTTP,
            url=str(url).rstrip("/"),
            token=token,
            execution_id=str(execution_id) if execution_id else None,
            experiment_id=str(experiment_id) if experiment_id and not execution_id else None,
            **common,
        )
    if url or token:
        logger.debug(
            "faultline: FAULTLINE_URL, FAULTLINE_TOKEN and an execution or experiment id "
            "are all needed to report to the Gateway; reporting is off"
        )
    return Config(mode=Mode.OFF, **common)
