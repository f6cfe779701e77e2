"""Receivers of every horsies signal that append one JSON line per call to the file named by
HORSIES_TEST_SIGNAL_LOG (a worker imports this module through its TASK_MODULES)."""

from __future__ import annotations

import json
import os
from typing import Any

from django.dispatch import Signal

from horsies_django import signals


def _recorder(name: str) -> Any:
    def record(sender: str, **arguments: Any) -> None:
        path = os.environ.get("HORSIES_TEST_SIGNAL_LOG")
        if not path:
            return
        exception = arguments.pop("exception", None)
        result = arguments.pop("result", None)
        arguments.pop("signal", None)  # Django passes the Signal object itself
        entry = {**arguments, "signal": name, "sender": sender, "in_pid": os.getpid()}
        if exception is not None:
            entry["exception"] = type(exception).__name__
        if result is not None:
            entry["ok"] = result.is_ok()
            entry["result_code"] = None if result.is_ok() else str(result.err_value.error_code)
        with open(path, "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")

    return record


RECEIVERS: dict[str, Any] = {}
for _name in ("task_started", "task_finished", "task_retried", "task_crashed"):
    _signal: Signal = getattr(signals, _name)
    RECEIVERS[_name] = _recorder(_name)
    _signal.connect(RECEIVERS[_name], weak=False, dispatch_uid=f"tests.{_name}")
