"""What `manage.py horsies_worker` was asked to do (its validated command-line options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    processes: int
    queues: tuple[str, ...] | None = None
    max_tasks_per_child: int = 0
    max_memory_per_child_mb: int = 0
    worker_name: str | None = None
    shutdown_timeout_s: float = 30.0
    settings_module: str | None = None
    scheduler: bool = False  # fire periodic schedules while this worker leads maintenance
