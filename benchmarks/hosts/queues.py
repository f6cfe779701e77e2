"""The harness's queues (CUSTOM mode, all uncapped) and the caps phase's limits on them."""

from __future__ import annotations

from typing import Any, Final

QUEUES: Final[list[dict[str, Any]]] = [
    {"name": "drain", "priority": 1},
    {"name": "cap_a", "priority": 2},
    {"name": "cap_b", "priority": 2},
    {"name": "recover", "priority": 3},
]
CAPS: Final = {"cap_a": 2, "cap_b": 3}
CLUSTER_WIDE_CAP: Final = 4


def capped() -> dict[str, Any]:
    """HORSIES keys of the caps phase: `CAPS` on their queues, and `CLUSTER_WIDE_CAP`."""
    queues = [{**q, "max_concurrency": CAPS[q["name"]]} if q["name"] in CAPS else q for q in QUEUES]
    return {"CUSTOM_QUEUES": queues, "CLUSTER_WIDE_CAP": CLUSTER_WIDE_CAP}
