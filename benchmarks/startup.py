"""Worker start-up on its own: the worker's trace of each drain, and a set-up probe.

The worker writes its start-up steps (milliseconds since the OS started its process) to the file
that `HORSIES_WORKER_STARTUP_TRACE` names (see `horsies_django.worker.startup`). The probe splits
the first step, "python and django.setup", the way the worker parent goes through it: a fresh
interpreter with the benchmark's settings is timed from just before it is spawned to its first
line (interpreter start), then through importing Django's management and psycopg and loading
the settings module (imports), then through `django.setup()` (the apps, their models and task
modules, and `ready()`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TRACE_SUFFIX = ".startup.json"

# Steps of the worker's trace, in the order they happen, with the table's labels.
STEPS: tuple[tuple[str, str], ...] = (
    ("django_ready", "Django set up (the command loaded)"),
    ("checks_done", "system checks done"),
    ("fork_server", "fork server running"),
    ("children_started", "children started"),
    ("connected", "connections open, worker registered"),
    ("children_ready", "all children ready"),
    ("first_claim", "first task claimed"),
    ("first_completion", "first outcome recorded"),
)

PROBE = """
import json, sys, time
t_first = time.time()
import django, django.core.management, psycopg
from django.conf import settings
settings.INSTALLED_APPS
t_imports = time.time()
django.setup()
print(json.dumps([t_first, t_imports, time.time()]))
"""


def trace_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + TRACE_SUFFIX)


def read_trace(log_path: Path) -> dict[str, float] | None:
    """The steps of the last worker that logged to `log_path`, in ms since its start."""
    try:
        written = json.loads(trace_path(log_path).read_text())
    except (OSError, ValueError):
        return None
    return {k: float(v) for k, v in written.get("since_start_ms", {}).items()}


def probe_setup(env: dict[str, str], cwd: Path, runs: int = 3) -> dict[str, float]:
    """Median ms of interpreter start, imports and django.setup() over `runs` fresh processes."""
    parts: dict[str, list[float]] = {"interpreter": [], "imports": [], "django_setup": []}
    for _ in range(runs):
        spawned = time.time()
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env={**os.environ, **env}, cwd=cwd,
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        first, imported, set_up = json.loads(out.stdout.strip().splitlines()[-1])
        parts["interpreter"].append((first - spawned) * 1000)
        parts["imports"].append((imported - first) * 1000)
        parts["django_setup"].append((set_up - imported) * 1000)
    return {k: statistics.median(v) for k, v in parts.items()}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over repeats of each step, of the probe, and of first completion vs raw SQL."""
    ours = runs.get("horsies_django", [])
    base = runs.get("raw_sql", [])
    steps = {
        key: _median([r["startup"][key] for r in ours if key in (r.get("startup") or {})])
        for key, _ in STEPS
    }
    probe = {
        key: _median([r["setup_probe"][key] for r in ours if r.get("setup_probe")])
        for key in ("interpreter", "imports", "django_setup")
    }
    ratios = [
        o["first_completion_s"] / b["first_completion_s"]
        for o, b in zip(ours, base, strict=False)
        if o.get("first_completion_s") and b.get("first_completion_s")
    ]
    return {
        "steps_ms": steps,
        "probe_ms": probe,
        "first_completion_s": _median([r["first_completion_s"] for r in ours]),
        "raw_first_completion_s": _median([r["first_completion_s"] for r in base]),
        "first_completion_xraw": _median(ratios),
    }


def render(summary: dict[str, Any]) -> str:
    """The start-up table: each step's time since the worker process started, and its share."""
    lines = [
        "Worker start-up (horsies_django, the N-task drain; medians over repeats; ms since the "
        "OS started the worker process, to a clock tick):",
        "",
        "| step | at (ms) | since the previous step (ms) |",
        "|---|---:|---:|",
    ]
    previous = 0.0
    for key, label in STEPS:
        at = summary["steps_ms"].get(key)
        if at is None:
            continue
        lines.append(f"| {label} | {at:,.0f} | {at - previous:,.0f} |")
        previous = at
    probe = summary["probe_ms"]
    if all(v is not None for v in probe.values()):
        lines += [
            "",
            "The first step, split by a probe process with the same settings (medians): "
            f"interpreter start {probe['interpreter']:.0f} ms, imports (Django's management, "
            f"psycopg, the settings) {probe['imports']:.0f} ms, django.setup() (apps, models, "
            f"task modules) {probe['django_setup']:.0f} ms.",
        ]
    ours, base, ratio = (
        summary["first_completion_s"],
        summary["raw_first_completion_s"],
        summary["first_completion_xraw"],
    )
    if ours is not None and base is not None and ratio is not None:
        lines += [
            "",
            f"Time to first completion seen by the harness: {ours:.3f} s against {base:.3f} s "
            f"for the raw-SQL workers, {ratio:.2f}x (median of same-repeat ratios; target <= 2x).",
        ]
    return "\n".join(lines)
