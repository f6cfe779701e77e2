"""Django app config: task modules are imported once the app registry is ready."""

from django.apps import AppConfig


class HorsiesDjangoConfig(AppConfig):
    name = "horsies_django"
    verbose_name = "Horsies task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from horsies_django import checks, eager, registry  # noqa: F401  (checks register)
        from horsies_django.exceptions import ConfigurationError

        eager.install()
        try:
            registry.autodiscover()
        except ConfigurationError:
            # Invalid HORSIES: load no tasks, so `manage.py check` (and every command that runs
            # checks, such as horsies_worker) can report each problem with its id and hint.
            return
