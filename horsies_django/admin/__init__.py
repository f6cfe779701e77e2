"""Django admin for horsies_django: tasks, attempts, workers, workflows, schedules
(registered on import)."""

from horsies_django.admin import attempts, schedules, tasks, workers, workflows

__all__ = ["attempts", "schedules", "tasks", "workers", "workflows"]
