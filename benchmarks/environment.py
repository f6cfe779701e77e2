"""What the figures were measured on: machine, PostgreSQL settings, package versions."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psycopg

PG_SETTINGS = (
    "fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections",
    "max_wal_size", "checkpoint_timeout", "wal_sync_method", "work_mem", "autovacuum", "jit",
)  # fmt: skip
PACKAGES = ("horsies-django", "django", "psycopg", "psycopg-binary", "pydantic", "psutil")


def machine() -> dict[str, Any]:
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_total = f.readline().split(":", 1)[1].strip()
    except OSError:
        mem_total = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def postgres_settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    row = conn.execute("SELECT version()").fetchone()
    out["version"] = str(row[0]) if row else "?"
    for name in PG_SETTINGS:
        row = conn.execute(f"SHOW {name}".encode()).fetchone()
        out[name] = str(row[0]) if row else "?"
    return out


def packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def source_fingerprint(repo_root: Path) -> dict[str, str]:
    """Git commit plus a hash of the package sources as they are now (the tree may be dirty)."""
    digest = hashlib.sha1()
    for path in sorted((repo_root / "horsies_django").rglob("*.py")):
        digest.update(path.relative_to(repo_root).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo_root, capture_output=True,
            text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = "?"
    return {"git_commit": commit or "?", "sources_sha1": digest.hexdigest()[:16]}
