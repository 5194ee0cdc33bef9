"""One run's reporter: numbers events, de-duplicates hooks, asks the runner what to do.

chaoslib calls the control's hooks; :mod:`chaosfaultline.control` forwards each one here.
Everything a hook learns is turned into one event (PROTOCOL.md, "Events"), and at every
checkpoint (before the experiment, the method, the rollbacks and each activity) the runner is
polled for the desired state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.run import RunEventHandler

from chaosfaultline import PROTOCOL_VERSION
from chaosfaultline.config import Config, Mode
from chaosfaultline.transport import (
    MAX_LINE_BYTES,
    TRUNCATION_MARKER,  # re-exported: tests and callers clip with the same marker
    Answer,
    HttpTransport,
    SocketTransport,
    Transport,
    clip_text,
    encode,
)

logger = logging.getLogger("chaostoolkit")

CONTROL_MODULE = "chaosfaultline.control"
_ABSENT = object()


def now_us() -> int:
    return time.time_ns() // 1000


def rollbacks_by_strategy(strategy: str, status: str | None, deviated: bool) -> bool:
    """Whether chaoslib 1.45 would play rollbacks (``chaoslib.run.run_rollback``)."""
    if strategy == "always":
        return True
    if strategy == "default":
        return status not in ("failed", "interrupted")
    if strategy == "deviated":
        return deviated
    return False


class Reporter:
    def __init__(
        self,
        config: Config,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.transport: Transport | None = transport or _transport_for(config)
        self._sleep = sleep
        self._lock = threading.RLock()
        self._seq = 0
        self._open: set[tuple[str, int]] = set()
        self._method = "not-started"  # -> "running" -> "done"
        self._in_rollbacks = False
        self._journal: dict[str, Any] | None = None
        self._configured = False
        self._closed = False
        # What the runner asked for (the latest terminate wins) and what we did about it.
        self._terminate: Answer | None = None
        self._interruption: dict[str, Any] | None = None
        self._pauses: list[dict[str, Any]] = []
        self._rollbacks: dict[str, Any] = {"managed": False}
        self._hidden_rollbacks: tuple[dict[str, Any], Any] | None = None

    @property
    def active(self) -> bool:
        return self.transport is not None and not self._closed

    # -- configuration --

    def configure(
        self,
        settings: dict[str, Any] | None,
        experiment: dict[str, Any] | None,
        event_registry: Any,
    ) -> None:
        """Once per run: keep the live journal at hand, and take over the rollback decision
        when this control will see the rollback hooks (PROTOCOL.md, "Rollbacks")."""
        with self._lock:
            if self._configured or not self.active:
                return
            self._configured = True
            if event_registry is not None:
                try:
                    event_registry.register(_JournalWatcher(self))
                except Exception:
                    logger.debug("faultline: could not watch the journal", exc_info=True)
            if self.config.mode is not Mode.RUNNER or not isinstance(settings, dict):
                return
            if experiment is None or not _sees_rollback_hooks(experiment):
                self._rollbacks["unmanaged_because"] = (
                    "the experiment declares top-level controls without chaosfaultline, "
                    "so chaoslib does not call this control at the rollback level"
                )
                return
            runtime = settings.setdefault("runtime", {})
            rollbacks = runtime.setdefault("rollbacks", {})
            strategy = rollbacks.get("strategy") or "default"
            # chaoslib reads the strategy once, right after configure_control; "always"
            # makes it reach before_rollback_control, where the real decision is taken.
            rollbacks["strategy"] = "always"
            self._rollbacks = {"managed": True, "strategy": str(strategy)}

    def watch_journal(self, journal: dict[str, Any]) -> None:
        self._journal = journal

    def enter_phase(self, phase: str) -> None:
        if phase == "method":
            self._method = "running"
        else:
            self._in_rollbacks = True

    def leave_phase(self, phase: str) -> None:
        if phase == "method":
            self._method = "done"
        else:
            self._in_rollbacks = False

    # -- events --

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        with self._lock:
            if not self.active:
                return
            self._seq += 1
            event = {"seq": self._seq, "type": kind, "ts_us": now_us(), "payload": payload}
            try:
                if len(encode(event)) > MAX_LINE_BYTES:
                    event["payload"] = {"dropped": "payload too large"}
            except (TypeError, ValueError, RecursionError):  # the seq is taken: never leave a hole
                event["payload"] = {"dropped": "payload not encodable"}
            assert self.transport is not None
            self.transport.send(event)

    def open_span(self, level: str, context: Any) -> bool:
        """False when this hook already fired for ``context`` (chaoslib's double firing)."""
        key = (level, id(context))
        with self._lock:
            if key in self._open:
                return False
            self._open.add(key)
            return True

    def close_span(self, level: str, context: Any) -> bool:
        key = (level, id(context))
        with self._lock:
            if key not in self._open:
                return False
            self._open.discard(key)
            return True

    # -- hooks --

    def before_loading(self, source: Any) -> None:
        self.emit("loading-before", {"source": self.clip(str(source))})

    def after_loading(self, experiment: Any) -> None:
        title = experiment.get("title") if isinstance(experiment, dict) else None
        self.emit("loading-after", {"title": self.clip(title)})

    def before_experiment(self, experiment: dict[str, Any]) -> None:
        if not self.open_span("experiment", experiment):
            return
        self.emit(
            "experiment-before",
            {
                "title": self.clip(experiment.get("title")),
                "execution_id": self.config.execution_id,
                "protocol": PROTOCOL_VERSION,
            },
        )
        self.checkpoint({"hook": "before-experiment"})

    def after_experiment(self, experiment: dict[str, Any], journal: Any) -> None:
        if not self.close_span("experiment", experiment):
            return
        self._restore_rollbacks(experiment)
        journal = journal if isinstance(journal, dict) else {}
        states = journal.get("steady_states") or {}
        payload = {
            "status": journal.get("status"),
            "deviated": bool(journal.get("deviated", False)),
            "duration": journal.get("duration"),
            "steady_state_before": _met(states.get("before")),
            "steady_state_after": _met(states.get("after")),
            "interruption": self._interruption,
        }
        self.emit("experiment-after", payload)
        if self.active:
            assert self.transport is not None
            self.transport.flush()  # so the summary says whether the events got through
            journal["faultline"] = self.summary()
            self.transport.complete(journal)

    def before_hypothesis(self, hypothesis: Any) -> None:
        if not self.open_span("hypothesis", hypothesis):
            return
        probes = hypothesis.get("probes") if isinstance(hypothesis, dict) else None
        self.emit(
            "hypothesis-before",
            {
                "title": self.clip(hypothesis.get("title") if isinstance(hypothesis, dict) else None),
                "phase": self._hypothesis_phase(),
                "probes": len(probes) if isinstance(probes, list) else 0,
            },
        )

    def after_hypothesis(self, hypothesis: Any, state: Any) -> None:
        if not self.close_span("hypothesis", hypothesis):
            return
        self.emit(
            "hypothesis-after",
            {
                "title": self.clip(hypothesis.get("title") if isinstance(hypothesis, dict) else None),
                "phase": self._hypothesis_phase(),
                "steady_state_met": _met(state),
            },
        )

    def before_method(self, experiment: dict[str, Any]) -> None:
        if not self.open_span("method", experiment):
            return
        self.enter_phase("method")
        self._checkpoint_in_span({"hook": "before-method"}, "method", experiment)
        method = experiment.get("method")
        self.emit("method-before", {"activities": len(method) if isinstance(method, list) else 0})

    def after_method(self, experiment: dict[str, Any], runs: Any) -> None:
        self.leave_phase("method")
        if not self.close_span("method", experiment):
            return
        self.emit("method-after", _runs_summary(runs))

    def before_rollbacks(self, experiment: dict[str, Any]) -> None:
        if not self.open_span("rollback", experiment):
            return
        self.enter_phase("rollbacks")
        try:
            self._checkpoint_in_span({"hook": "before-rollbacks"}, "rollback", experiment)
        except InterruptExecution:
            self._rollbacks.update(played=False, decided_by="runner")
            raise
        play, why = self._rollback_decision()
        self._rollbacks.update(played=play, decided_by=why)
        if not play:
            self.close_span("rollback", experiment)
            if self._terminate is not None and self._terminate.rollbacks is False:
                # Interrupting here is how chaoslib skips rollbacks without a trace.
                raise InterruptExecution(self._terminate.reason or "terminated by the runner")
            # Hidden until after_rollback_control: chaoslib then plays nothing.
            self._hidden_rollbacks = (experiment, experiment.pop("rollbacks", _ABSENT))
            experiment["rollbacks"] = []
            return
        rollbacks = experiment.get("rollbacks")
        self.emit(
            "rollbacks-before",
            {"activities": len(rollbacks) if isinstance(rollbacks, list) else 0},
        )

    def after_rollbacks(self, experiment: dict[str, Any], runs: Any) -> None:
        self.leave_phase("rollbacks")
        self._restore_rollbacks(experiment)
        if not self.close_span("rollback", experiment):
            return
        self.emit("rollbacks-after", _runs_summary(runs))

    def before_activity(self, activity: Any) -> None:
        if not self.open_span("activity", activity):
            return
        name = activity.get("name") if isinstance(activity, dict) else None
        self._checkpoint_in_span(
            {"hook": "before-activity", "phase": self._phase(), "activity": self.clip(name)},
            "activity",
            activity,
        )
        self.emit(
            "activity-before",
            {
                "name": self.clip(name),
                "activity_type": activity.get("type") if isinstance(activity, dict) else None,
                "phase": self._phase(),
                "background": bool(isinstance(activity, dict) and activity.get("background")),
            },
        )

    def after_activity(self, activity: Any, run: Any) -> None:
        if not self.close_span("activity", activity):
            return
        run = run if isinstance(run, dict) else {}
        name = activity.get("name") if isinstance(activity, dict) else None
        payload: dict[str, Any] = {
            "name": self.clip(name),
            "activity_type": activity.get("type") if isinstance(activity, dict) else None,
            "phase": self._phase(),
            "status": run.get("status"),
            "duration": run.get("duration"),
        }
        if "tolerance_met" in run:
            payload["tolerance_met"] = run["tolerance_met"]
        payload.update(self.output_fields(run.get("output")))
        exception = run.get("exception")
        if isinstance(exception, list) and exception:
            payload["error"] = self.clip(str(exception[-1]).strip())
        self.emit("activity-after", payload)

    # -- the runner's wishes --

    def _checkpoint_in_span(self, at: dict[str, Any], level: str, context: Any) -> None:
        """A checkpoint at the start of a span whose before-event is not sent yet. When it
        ends the run (terminate, or a signal during a pause) the span is closed unreported,
        so the after-hook chaoslib still calls is skipped too: the step never started."""
        try:
            self.checkpoint(at)
        except BaseException:
            self.close_span(level, context)
            raise

    def checkpoint(self, at: dict[str, Any]) -> None:
        """Ask the runner what to do; pause here, or raise InterruptExecution to terminate."""
        if not self.active:
            return
        answer = self._ask(at)
        if answer is not None and answer.state == "pause":
            answer = self._pause(at, answer)
        if answer is None or answer.state != "terminate":
            return
        self._terminate = answer
        if self._in_rollbacks and answer.rollbacks is not False:
            return  # the remaining rollbacks are what the runner asked for
        reason = answer.reason or "terminated by the runner"
        if self._interruption is None:
            self._interruption = {
                "reason": reason,
                "rollbacks": answer.rollbacks,
                "at": at,
                "ts_us": now_us(),
            }
            self.emit("terminate-requested", dict(self._interruption))
        raise InterruptExecution(reason)

    def _ask(self, at: dict[str, Any]) -> Answer | None:
        assert self.transport is not None
        with self._lock:
            return self.transport.poll(at)

    def _pause(self, at: dict[str, Any], answer: Answer) -> Answer | None:
        """Sleep, polling, until the runner says otherwise or the pause runs out. Returns
        the terminate answer that ended it, if one did."""
        started = now_us()
        limit = started + int(self.config.max_pause_seconds * 1_000_000)
        until = limit if answer.pause_until_us is None else min(answer.pause_until_us, limit)
        self.emit("paused", {"at": at, "until_us": until, "reason": answer.reason})
        outcome = "timed-out"
        current: Answer | None = None
        try:
            while now_us() < until:
                self._sleep(self.config.pause_poll_interval_s)
                polled = self._ask(at)
                if polled is None:
                    if self.transport is None or not self.transport.polling:
                        outcome = "runner-lost"
                        break
                    continue
                if polled.state != "pause":
                    outcome = "resumed" if polled.state == "run" else "terminated"
                    current = polled if polled.state == "terminate" else None
                    break
                if polled.pause_until_us is not None:
                    until = min(polled.pause_until_us, limit)
        except BaseException:
            outcome = "interrupted"  # SIGTERM (InterruptExecution) or SIGUSR1/2 (SystemExit)
            raise
        finally:
            ended = now_us()
            self._pauses.append({"at": at, "started_us": started, "ended_us": ended, "outcome": outcome})
            self.emit("resumed", {"at": at, "outcome": outcome, "paused_us": ended - started})
        return current

    def _rollback_decision(self) -> tuple[bool, str]:
        terminate = self._terminate
        if terminate is not None and terminate.rollbacks is not None:
            return terminate.rollbacks, "runner"
        if not self._rollbacks.get("managed"):
            return True, "chaoslib"  # chaoslib decided already: we are in its rollbacks
        journal = self._journal or {}
        strategy = self._rollbacks["strategy"]
        return (
            rollbacks_by_strategy(strategy, journal.get("status"), bool(journal.get("deviated"))),
            f"strategy:{strategy}",
        )

    def _restore_rollbacks(self, experiment: dict[str, Any]) -> None:
        if self._hidden_rollbacks is not None and self._hidden_rollbacks[0] is experiment:
            original = self._hidden_rollbacks[1]
            if original is _ABSENT:
                experiment.pop("rollbacks", None)
            else:
                experiment["rollbacks"] = original
            self._hidden_rollbacks = None

    # -- helpers --

    def summary(self) -> dict[str, Any]:
        """The ``faultline`` key added to the journal."""
        return {
            "protocol": PROTOCOL_VERSION,
            "mode": self.config.mode.value,
            "execution_id": getattr(self.transport, "execution_id", None) or self.config.execution_id,
            "last_seq": self._seq,
            "reporting": "silenced" if self.transport and self.transport.silenced else "ok",
            "polling": "ok" if self.transport and self.transport.polling else "off",
            "interruption": self._interruption,
            "pauses": list(self._pauses),
            "rollbacks": dict(self._rollbacks),
        }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.transport is not None:
                self.transport.close()

    def clip(self, text: Any) -> Any:
        """A string cut to ``output_limit`` UTF-8 bytes, marked when cut; anything else as is."""
        return clip_text(text, self.config.output_limit) if isinstance(text, str) else text

    def output_fields(self, output: Any) -> dict[str, Any]:
        """The output as is when its JSON fits the limit, else a clipped JSON string."""
        try:
            text = json.dumps(output, ensure_ascii=False, default=str, allow_nan=False)
        except (TypeError, ValueError):
            text = json.dumps(repr(output), ensure_ascii=False)
        size = len(text.encode("utf-8"))
        if size <= self.config.output_limit:
            return {"output": json.loads(text), "output_truncated": False}
        return {
            "output": self.clip(text),
            "output_truncated": True,
            "output_bytes": size,
        }

    def _phase(self) -> str:
        if self._in_rollbacks:
            return "rollbacks"
        with self._lock:  # background activities open and close spans concurrently
            in_hypothesis = any(level == "hypothesis" for level, _ in self._open)
        if in_hypothesis:
            return "hypothesis"
        return "method" if self._method == "running" else "hypothesis"

    def _hypothesis_phase(self) -> str:
        return {"not-started": "before", "running": "during", "done": "after"}[self._method]


def _transport_for(config: Config) -> Transport | None:
    if config.mode is Mode.RUNNER:
        return SocketTransport(config)
    if config.mode is Mode.HTTP:
        return HttpTransport(config)
    return None


def _met(state: Any) -> bool | None:
    met = state.get("steady_state_met") if isinstance(state, dict) else None
    return met if isinstance(met, bool) else None


def _runs_summary(runs: Any) -> dict[str, Any]:
    runs = runs if isinstance(runs, list) else []
    statuses = [r.get("status") for r in runs if isinstance(r, dict)]
    return {
        "runs": len(statuses),
        "succeeded": statuses.count("succeeded"),
        "failed": statuses.count("failed"),
    }


def _sees_rollback_hooks(experiment: dict[str, Any]) -> bool:
    """chaoslib calls only the experiment's own top-level controls at the method and
    rollback levels when it declares any (``get_context_controls``)."""
    top = experiment.get("controls") or []
    if not top:
        return True
    return any(
        isinstance(c, dict)
        and c.get("automatic", True)
        and c.get("scope") in (None, "before")
        and (c.get("provider") or {}).get("module") == CONTROL_MODULE
        for c in top
    )


class _JournalWatcher(RunEventHandler):  # type: ignore[misc]  # chaoslib is untyped
    """Hands the live journal to the reporter, and the phases: chaoslib's run events fire
    even where its control merging skips this control's method and rollback hooks."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def running(
        self,
        experiment: Any,
        journal: Any,
        configuration: Any,
        secrets: Any,
        schedule: Any,
        settings: Any,
    ) -> None:
        if isinstance(journal, dict):
            self._reporter.watch_journal(journal)

    def start_method(self, experiment: Any) -> None:
        self._reporter.enter_phase("method")

    def method_completed(self, experiment: Any, state: Any = None) -> None:
        self._reporter.leave_phase("method")

    def start_rollbacks(self, experiment: Any) -> None:
        self._reporter.enter_phase("rollbacks")

    def rollbacks_completed(self, experiment: Any, journal: Any) -> None:
        self._reporter.leave_phase("rollbacks")
