"""Periodic schedules: declare them in code or settings; a scheduler fires each slot once.

See docs/schedules.md.
"""

from horsies_django.schedules import checks  # noqa: F401  (registers the system checks)
from horsies_django.schedules.declared import Schedule
from horsies_django.schedules.patterns import Cron, Daily, Every, Hourly, Monthly, Weekly

__all__ = ["Cron", "Daily", "Every", "Hourly", "Monthly", "Schedule", "Weekly"]
