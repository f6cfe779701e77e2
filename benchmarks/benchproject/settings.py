"""Minimal Django project for the benchmark: horsies_django + one no-op task, no test settings.

Only `DATABASE_URL` is read from the environment; every HORSIES key keeps its default, so the
figures describe what a user gets out of the box. To measure an option against the default,
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
INSTALLED_APPS = ["horsies_django", "benchmarks.benchtasks"]
DATABASES = {"default": env.db("DATABASE_URL")}
# Persistent connections, Django's documented setting for long-lived processes.
DATABASES["default"]["CONN_MAX_AGE"] = 600
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORSIES: dict[str, object] = json.loads(os.environ.get("HORSIES_BENCH_SETTINGS", "{}"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "WARNING"}},
}
