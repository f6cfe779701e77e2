"""Django app config: task modules are imported once the app registry is ready."""

from django.apps import AppConfig


class HorsiesDjangoConfig(AppConfig):
    name = "horsies_django"
    verbose_name = "Horsies task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from horsies_django import checks, registry  # noqa: F401  (checks register themselves)

        registry.autodiscover()
