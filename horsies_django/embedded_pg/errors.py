"""How the throwaway PostgreSQL reports trouble: one exception type and ``[embedded-pg]`` lines.

Trouble finding, preparing or starting a server is raised as :class:`EmbeddedPostgresError`;
progress goes to stderr, never stdout, so a wrapped command's output stays its own.
"""

from __future__ import annotations

import sys


class EmbeddedPostgresError(RuntimeError):
    """The throwaway PostgreSQL server could not be found, started or stopped."""


def log(message: str) -> None:
    """Print one progress line to stderr."""
    print(f"[embedded-pg] {message}", file=sys.stderr, flush=True)
