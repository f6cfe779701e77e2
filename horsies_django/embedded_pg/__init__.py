"""A private, throwaway PostgreSQL server for tests, demos and benchmarks (see ``postmaster``)."""

from __future__ import annotations

from horsies_django.embedded_pg.postmaster import (
    EmbeddedPostgresError,
    ThrowawayServer,
    find_pg_bindir,
    main,
    require_pg_bindir,
    running_postgres,
    throwaway_postgres,
)

__all__ = [
    "EmbeddedPostgresError",
    "ThrowawayServer",
    "find_pg_bindir",
    "main",
    "require_pg_bindir",
    "running_postgres",
    "throwaway_postgres",
]
