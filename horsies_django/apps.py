"""Django app config: task modules are imported once the app registry is ready."""

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class HorsiesDjangoConfig(AppConfig):
    name = "horsies_django"
    verbose_name = "Horsies task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from horsies_django import (  # noqa: F401  (checks register)
            checks,
            eager,
            pooler_checks,
            registry,
        )
        from horsies_django.exceptions import ConfigurationError

        eager.install()
        post_migrate.connect(_refresh_catalogue, sender=self)
        try:
            registry.autodiscover()
        except ConfigurationError:
            # Invalid HORSIES: load no tasks, so `manage.py check` (and every command that runs
            # checks, such as horsies_worker) can report each problem with its id and hint.
            return


def _refresh_catalogue(*, using: str, **_: Any) -> None:
    """After `migrate`: publish the registered tasks for senders in other languages."""
    from horsies_django import catalogue
    from horsies_django.conf import horsies_settings

    if using != horsies_settings().DATABASE_ALIAS:
        return
    if "horsies_task_catalogue" not in connections[using].introspection.table_names():
        return  # migrated backwards past 0007
    catalogue.refresh(using)
