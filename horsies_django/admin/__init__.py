"""Django admin for horsies_django: tasks, attempts, workers, workflows (registered on import)."""

from horsies_django.admin import attempts, tasks, workers, workflows

__all__ = ["attempts", "tasks", "workers", "workflows"]
