from django.apps import AppConfig


class ItemsConfig(AppConfig):
    name = "benchmarks.benchproject.items"
    default_auto_field = "django.db.models.BigAutoField"
