"""App config of the orders example app (its `tasks` module is autodiscovered by horsies_django)."""

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders (horsies example)"
    default_auto_field = "django.db.models.BigAutoField"
