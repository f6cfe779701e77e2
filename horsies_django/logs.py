"""The worker's logging: levels from `-v`, and a JSON format for log collectors.

Loggers (configure them with Django's `LOGGING`): `horsies_django.worker` (start, stop,
children, the database connection), `horsies_django.worker.tasks` (one line per task),
`horsies_django.maintenance` (rescuer, expirer), `horsies_django.signals` (receivers that
raised). `JsonFormatter` can also be named in `LOGGING` as
`{"()": "horsies_django.logs.JsonFormatter"}`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final, Literal

ROOT_LOGGER: Final = "horsies_django"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has: anything else was passed with `extra=` and is written out.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

type LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the task's fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def level_for(verbosity: int) -> int | None:
    """`-v 0`: WARNING; `-v 2` or more: DEBUG; the default `-v 1`: None (INFO unless LOGGING
    configured the `horsies_django` logger, whose level is then kept)."""
    if verbosity <= 0:
        return logging.WARNING
    if verbosity >= 2:
        return logging.DEBUG
    return None


def configure(verbosity: int, fmt: LogFormat = "text") -> None:
    """Set up the worker's logging without undoing what Django's `LOGGING` configured."""
    logger = logging.getLogger(ROOT_LOGGER)
    configured = bool(logger.handlers) or logger.level != logging.NOTSET
    if (not logger.handlers and not logging.getLogger().handlers) or fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    level = level_for(verbosity)
    if level is not None:
        logger.setLevel(level)
    elif not configured:
        logger.setLevel(logging.INFO)
