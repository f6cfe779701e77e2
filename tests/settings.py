"""Settings for horsies_django's own test suite (DATABASE_URL points at a throwaway server)."""

import json
import os
from typing import Any

import environ

env = environ.Env()

SECRET_KEY = "horsies-tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "horsies_django",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgresql://horsies@127.0.0.1:5432/horsies")
}
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Under tests/pooler.py (`./dev test` runs the worker, result and admin tests so): `default`
# goes through PgBouncer in transaction mode, and LISTEN uses the direct `direct` alias.
POOLER_URL = os.environ.get("HORSIES_POOLER_URL")
if POOLER_URL:
    DATABASES["direct"] = DATABASES["default"]
    DATABASES["default"] = {
        **env.db_url_config(POOLER_URL),
        "CONN_MAX_AGE": 0,
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORSIES: dict[str, Any] = {
    "HEARTBEAT_INTERVAL_MS": 500,
    "POLL_INTERVAL_MS": 1_000,
    "RESCUER_INTERVAL_MS": 500,
}
# Django's own task API (django.tasks, Django 6.0+) runs on horsies_django: a project that used
# django-tasks-db switches by naming this backend (tests/test_django_tasks_backend.py).
TASKS = {"default": {"BACKEND": "horsies_django.backends.HorsiesBackend"}}
if POOLER_URL:
    HORSIES["LISTEN_DATABASE_ALIAS"] = "direct"
# Worker subprocesses started by tests can be given other HORSIES values through this variable.
HORSIES.update(json.loads(os.environ.get("HORSIES_TEST_OVERRIDES", "{}")))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "INFO"}},
}
