"""The expirer: PENDING tasks whose good_until has passed become EXPIRED (no attempt row)."""

from __future__ import annotations

import logging

import psycopg

from horsies_django.db import connections, maintenance_queries

logger = logging.getLogger("horsies_django.maintenance")


def run_once(conn: psycopg.Connection[connections.Row]) -> int:
    expired = maintenance_queries.expire_pending(conn)
    if expired:
        logger.info("expirer: %d task(s) passed good_until and expired", expired)
    return expired
