"""Settings for fault-injection workers: short leases and intervals so recovery is quick.

Workers started by `tests/faults/conftest.py` run with `--settings tests.faults.settings`.
"""

from tests.settings import *  # noqa: F403
from tests.settings import HORSIES as _BASE

HORSIES = {
    **_BASE,
    "TASK_MODULES": ["tests.testapp.tasks", "tests.faults.tasks"],
    "CLAIM_LEASE_MS": 2_000,
    "HEARTBEAT_INTERVAL_MS": 300,
    "WORKER_STALE_AFTER_MS": 2_000,
    "RESCUER_INTERVAL_MS": 300,
    "POLL_INTERVAL_MS": 500,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"stamped": {"format": "%(asctime)s %(process)d %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "INFO"}},
}
