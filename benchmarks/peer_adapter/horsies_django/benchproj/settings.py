"""Minimal Django project for the horsies_django benchmark adapter (settings from DATABASE_URL)."""

import os
from urllib.parse import unquote, urlparse

_url = urlparse(os.environ["DATABASE_URL"])

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["horsies_django", "benchtasks"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        "CONN_MAX_AGE": 600,  # same as the django_tasks_db adapter
    }
}
HORSIES: dict[str, object] = {}  # every key at its default
# The horsies_django_tasks adapter drives the same queue through Django's own task API.
TASKS = {"default": {"BACKEND": "horsies_django.backends.HorsiesBackend"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"horsies_django": {"handlers": ["console"], "level": "WARNING"}},
}
