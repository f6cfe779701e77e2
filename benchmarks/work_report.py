"""The real-work workloads' figures: medians per system, same-repeat ratios to the baseline."""

from __future__ import annotations

import statistics
from typing import Any

OURS, BASE = "horsies_django", "raw_sql"
LABELS = {
    "orm": "one ORM insert per task",
    "io": "10 ms I/O-bound (sleep)",
    "mixed": "mixed: 95 % 1 ms, 5 % 1 s",
}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(work_runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per work: each system's median drain rate, steady rate and share of the ceiling, and
    the median over repeats of horsies_django / raw_sql in the same repeat."""
    out: dict[str, Any] = {}
    for work, runs in work_runs.items():
        per: dict[str, Any] = {}
        for name, results in runs.items():
            per[name] = {
                key: _median([r[key] for r in results if r.get(key) is not None])
                for key in ("drain_per_s", "steady_per_s", "share_of_ceiling",
                            "total_cpu_s_per_1k", "first_completion_s")
            }  # fmt: skip
        pairs = list(zip(runs.get(OURS, []), runs.get(BASE, []), strict=False))
        per["ratio_drain"] = _median([o["drain_per_s"] / b["drain_per_s"] for o, b in pairs])
        per["ratio_steady"] = _median(
            [o["steady_per_s"] / b["steady_per_s"] for o, b in pairs
             if o.get("steady_per_s") and b.get("steady_per_s")]
        )  # fmt: skip
        per["ceiling_per_s"] = next(
            (r.get("ceiling_per_s") for rs in runs.values() for r in rs), None
        )
        out[work] = per
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(summary: dict[str, Any], n: int, repeats: int, processes: int) -> str:
    lines = [
        f"\nreal work: {n:,} tasks per drain, {processes} processes, medians of {repeats}; "
        "ratio = horsies_django / raw_sql in the same repeat (median)\n",
        "| workload | ceiling (tasks/s) | horsies_django drain | raw_sql drain | ratio "
        "| steady ratio | share of ceiling (ours / raw) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for work, per in summary.items():
        ours, base = per.get(OURS, {}), per.get(BASE, {})
        lines.append(
            f"| {LABELS.get(work, work)} | {_fmt(per['ceiling_per_s'], ',.0f')} | "
            f"{_fmt(ours.get('drain_per_s'), ',.0f')} | {_fmt(base.get('drain_per_s'), ',.0f')} | "
            f"{_fmt(per['ratio_drain'], '.2f')} | {_fmt(per['ratio_steady'], '.2f')} | "
            f"{_fmt(ours.get('share_of_ceiling'), '.2f')} / "
            f"{_fmt(base.get('share_of_ceiling'), '.2f')} |"
        )
    return "\n".join(lines)
