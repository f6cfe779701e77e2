"""Typed, lazy access to `settings.HORSIES`.

`horsies_settings()` parses the dict once into a frozen pydantic model and caches it; the cache
is dropped on Django's `setting_changed`, so `override_settings(HORSIES=...)` takes effect.
Validation problems are reported by `checks.py`; here they raise `ConfigurationError`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Final, Literal, Self

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from horsies_django.exceptions import ConfigurationError

DEFAULT_QUEUE: Final = "default"
QUEUE_NAME_PATTERN: Final = r"^[A-Za-z0-9_.\-]{1,64}$"
# PostgreSQL cannot store a jsonb value (or a string inside one) of 256 MiB or more.
MAX_JSONB_BYTES: Final = 255 * 1024 * 1024


class QueueSpec(BaseModel):
    """One queue of CUSTOM mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=QUEUE_NAME_PATTERN)]
    priority: Annotated[int, Field(ge=1, le=100)] = 1
    max_concurrency: Annotated[int | None, Field(ge=0)] = None


class HorsiesSettings(BaseModel):
    """Every key of `settings.HORSIES`, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    QUEUE_MODE: Literal["DEFAULT", "CUSTOM"] = "DEFAULT"
    CUSTOM_QUEUES: tuple[QueueSpec, ...] = ()
    CLUSTER_WIDE_CAP: Annotated[int | None, Field(ge=1)] = None
    RESEND_ON_TRANSIENT_ERR: bool = False
    PREPARED_STATEMENTS: bool = True
    EXCEPTION_MAPPER: dict[str, str] = Field(default_factory=dict)
    DEFAULT_UNHANDLED_ERROR_CODE: str = "UNHANDLED_EXCEPTION"
    TASK_MODULES: tuple[str, ...] | None = None
    DATABASE_ALIAS: str = "default"
    # The alias for connections that need a PostgreSQL session of their own (LISTEN, the
    # worker's control connection): a direct one when DATABASE_ALIAS goes through a
    # transaction pooler (docs/operations.md, "PgBouncer"). None: DATABASE_ALIAS.
    LISTEN_DATABASE_ALIAS: str | None = None
    HEARTBEAT_INTERVAL_MS: Annotated[int, Field(ge=100)] = 5_000
    CLAIM_LEASE_MS: Annotated[int, Field(ge=1_000)] = 60_000
    WORKER_STALE_AFTER_MS: Annotated[int, Field(ge=1_000)] = 30_000
    RESCUER_INTERVAL_MS: Annotated[int, Field(ge=100)] = 10_000
    POLL_INTERVAL_MS: Annotated[int, Field(ge=50)] = 5_000
    # Periodic schedules declared in settings (validated by horsies_django.schedules; see
    # docs/schedules.md), beside those declared in code with `app.periodic(...)`.
    SCHEDULES: tuple[dict[str, Any], ...] = ()
    # A workflow paused for longer ends EXPIRED (WORKFLOW_EXPIRED); None: it waits for ever.
    WORKFLOW_PAUSE_EXPIRES_AFTER_MS: Annotated[int | None, Field(ge=0)] = 7 * 24 * 3_600_000
    EAGER: bool = False
    # Limits checked before anything reaches the database (see docs/settings.md, "Limits").
    MAX_PAYLOAD_BYTES: Annotated[int, Field(ge=1_024, le=MAX_JSONB_BYTES)] = 1_048_576
    MAX_RESULT_BYTES: Annotated[int, Field(ge=1_024, le=MAX_JSONB_BYTES)] = 10_485_760
    # Claims committed without waiting for the WAL flush: faster, but a PostgreSQL crash can
    # undo claims whose tasks had already started, and those tasks then run a second time.
    ASYNC_CLAIM_COMMIT: bool = False

    @model_validator(mode="after")
    def _queues_match_mode(self) -> Self:
        if self.QUEUE_MODE == "CUSTOM" and not self.CUSTOM_QUEUES:
            raise ValueError("QUEUE_MODE 'CUSTOM' needs CUSTOM_QUEUES: add at least one queue")
        if self.QUEUE_MODE == "DEFAULT" and self.CUSTOM_QUEUES:
            raise ValueError("CUSTOM_QUEUES is only used with QUEUE_MODE 'CUSTOM'")
        names = [q.name for q in self.CUSTOM_QUEUES]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"CUSTOM_QUEUES names must be unique; repeated: {duplicates}")
        return self

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        """The queues in claim order (priority 1 first)."""
        if self.QUEUE_MODE == "DEFAULT":
            return (QueueSpec(name=DEFAULT_QUEUE, priority=1),)
        return tuple(sorted(self.CUSTOM_QUEUES, key=lambda q: q.priority))

    @property
    def listen_alias(self) -> str:
        """The alias LISTEN and session-bound connections use."""
        return self.LISTEN_DATABASE_ALIAS or self.DATABASE_ALIAS

    def queue(self, name: str) -> QueueSpec | None:
        return next((q for q in self.queues if q.name == name), None)


def behind_transaction_pooler(alias: str) -> bool:
    """Whether database `alias` goes through a transaction pooler such as PgBouncer.

    Django's own marker for it: `DISABLE_SERVER_SIDE_CURSORS` (which Django asks for with
    transaction pooling). Such an alias gets no server-side prepared statements, no session
    settings and no LISTEN.
    """
    return bool(settings.DATABASES.get(alias, {}).get("DISABLE_SERVER_SIDE_CURSORS", False))


def raw_settings() -> dict[str, Any]:
    value = getattr(settings, "HORSIES", None) or {}
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"settings.HORSIES must be a dict, not {type(value).__name__}: e.g. HORSIES = {{}}"
        )
    return value


def parse(raw: dict[str, Any]) -> HorsiesSettings:
    """Validate a HORSIES dict (raises pydantic's ValidationError)."""
    return HorsiesSettings.model_validate(raw)


@lru_cache(maxsize=1)
def horsies_settings() -> HorsiesSettings:
    """The validated settings (cached until `setting_changed`)."""
    try:
        return parse(raw_settings())
    except ValidationError as exc:
        raise ConfigurationError(
            f"settings.HORSIES is invalid; run `manage.py check` for details:\n{exc}"
        ) from exc


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **_: Any) -> None:
    if setting in {"HORSIES", "DATABASES"}:
        horsies_settings.cache_clear()
