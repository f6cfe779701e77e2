"""Django admin for horsies_django: tasks, attempts and workers (registered on import)."""

from horsies_django.admin import attempts, tasks, workers

__all__ = ["attempts", "tasks", "workers"]
