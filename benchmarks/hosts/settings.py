"""Django settings of the many-hosts harness: the harness itself and every host's worker.

`HOSTS_DATABASE_URL` is the address this process reaches PostgreSQL at (loopback for the
harness, the host's own link for a worker). Two aliases name the same database:
- `queue` (`HORSIES["DATABASE_ALIAS"]`): the worker's connections, with TCP timeouts, so a
  worker whose link goes down notices within seconds instead of blocking in a send;
- `default`: what task code uses (the run records), without them, so a task cut off while
  recording its run finishes recording when the link is back and every execution is counted.
`HOSTS_HORSIES` (JSON) overrides HORSIES keys for one phase of the run; `HOSTS_TCP_TIMEOUTS=0`
leaves the `queue` alias without TCP timeouts (what a project that sets none gets).
"""

import json
import os

import environ

from benchmarks.hosts.queues import QUEUES

env = environ.Env()

TCP_TIMEOUTS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 4000,
}

SECRET_KEY = "horsies-hosts-bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = ["horsies_django", "benchmarks.hosts.benchapp"]
DATABASES = {
    "default": env.db("HOSTS_DATABASE_URL"),
    "queue": env.db("HOSTS_DATABASE_URL"),
}
DATABASES["default"]["CONN_MAX_AGE"] = 600
DATABASES["queue"]["CONN_MAX_AGE"] = 600
if os.environ.get("HOSTS_TCP_TIMEOUTS", "1") != "0":
    DATABASES["queue"]["OPTIONS"] = TCP_TIMEOUTS
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORSIES: dict[str, object] = {
    "DATABASE_ALIAS": "queue",
    "QUEUE_MODE": "CUSTOM",
    "CUSTOM_QUEUES": QUEUES,
    **json.loads(os.environ.get("HOSTS_HORSIES", "{}")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "INFO"}},
}
