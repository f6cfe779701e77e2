"""Minimal Django project for the benchmark: horsies_django, the bench tasks and one user model
(items, for the `orm` workload), no test settings.

Only `DATABASE_URL` is read from the environment (and `HORSIES_POOLER_URL`, see below); every
HORSIES key keeps its default, so the figures describe what a user gets out of the box. To
measure an option against the default,
`HORSIES_BENCH_SETTINGS` may hold HORSIES keys as JSON, e.g. '{"ASYNC_CLAIM_COMMIT": true}'.
"""

import json
import os

import environ

env = environ.Env()

SECRET_KEY = "horsies-bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = ["horsies_django", "benchmarks.benchtasks", "benchmarks.benchproject.items"]
DATABASES = {"default": env.db("DATABASE_URL")}
# Persistent connections, Django's documented setting for long-lived processes.
DATABASES["default"]["CONN_MAX_AGE"] = 600
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORSIES: dict[str, object] = json.loads(os.environ.get("HORSIES_BENCH_SETTINGS", "{}"))
# Under `python -m tests.pooler -- python benchmarks/run.py ...`: the queue through PgBouncer in
# transaction mode, LISTEN and the workers' control connections direct (docs/operations.md).
POOLER_URL = os.environ.get("HORSIES_POOLER_URL")
if POOLER_URL:
    DATABASES["direct"] = DATABASES["default"]
    DATABASES["default"] = {
        **env.db_url_config(POOLER_URL),
        "CONN_MAX_AGE": 600,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    HORSIES["LISTEN_DATABASE_ALIAS"] = "direct"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "WARNING"}},
}
