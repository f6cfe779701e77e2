"""Medians over repeats, ratios to the same-repeat baseline, the targets, and the table."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

OURS, BASE = "horsies_django", "raw_sql"

# (key, label, format, higher is better)
METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("send_per_s", "single send (tasks/s)", ",.0f", True),
    ("send_interleaved_per_s", "single send, interleaved (tasks/s)", ",.0f", True),
    ("bulk_send_per_s", "bulk send, chunks of 1,000 (tasks/s)", ",.0f", True),
    ("drain_per_s", "drain incl. start-up (tasks/s)", ",.0f", True),
    ("first_completion_s", "drain: time to first completion (s)", ".2f", False),
    ("steady_per_s", "drain: steady rate after first (tasks/s)", ",.0f", True),
    ("latency_p50_ms", "send→result p50 (ms)", ".2f", False),
    ("latency_p95_ms", "send→result p95 (ms)", ".2f", False),
    ("latency_p99_ms", "send→result p99 (ms)", ".2f", False),
    ("latency_max_ms", "send→result max (ms)", ".2f", False),
    ("worker_cpu_s_per_1k", "CPU s / 1k tasks: workers", ".2f", False),
    ("pg_cpu_s_per_1k", "CPU s / 1k tasks: PostgreSQL", ".2f", False),
    ("total_cpu_s_per_1k", "CPU s / 1k tasks: total", ".2f", False),
    ("worker_rss_mb_end", "worker RSS after the drain (MB)", ".0f", False),
)


def _median(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return statistics.median(real) if real else None


def _ratio_of(key: str) -> Callable[[dict[str, Any], dict[str, Any]], float | None]:
    def ratio(ours: dict[str, Any], base: dict[str, Any]) -> float | None:
        if not ours.get(key) or not base.get(key):
            return None
        return float(ours[key]) / float(base[key])

    return ratio


def _per_repeat(
    runs: dict[str, list[dict[str, Any]]],
    fn: Callable[[dict[str, Any], dict[str, Any]], float | None],
) -> float | None:
    pairs = zip(runs.get(OURS, []), runs.get(BASE, []), strict=False)
    return _median([fn(o, b) for o, b in pairs])


BIG_KEYS = ("drain_per_s", "steady_per_s", "first_completion_s", "total_cpu_s_per_1k")


def _big_summary(
    runs: dict[str, list[dict[str, Any]]], big: dict[str, list[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Medians of the 100k drains, and each one's steady rate over the same repeat's N drain."""
    out: dict[str, dict[str, Any]] = {}
    for name, drains in big.items():
        entry: dict[str, Any] = {k: _median([d.get(k) for d in drains]) for k in BIG_KEYS}
        entry["steady_range"] = [min(d["steady_per_s"] for d in drains),
                                 max(d["steady_per_s"] for d in drains)]  # fmt: skip
        entry["steady_x_small"] = [
            d["steady_per_s"] / r["steady_per_s"]
            for d, r in zip(drains, runs.get(name, []), strict=False)
            if d.get("steady_per_s") and r.get("steady_per_s")
        ]
        # RSS is read per drain; the growth check takes the largest growth seen.
        growth = []
        for d in drains:
            at = d["worker_rss_mb_at"]
            keys = sorted(at, key=int)
            if len(keys) == 2 and at[keys[0]]:
                growth.append((at[keys[1]] / at[keys[0]], at[keys[0]], at[keys[1]], keys))
        if growth:
            ratio, first, last, keys = max(growth)
            entry["rss_growth"] = {"ratio": ratio, "marks": [int(k) for k in keys],
                                   "mb": [first, last]}  # fmt: skip
        out[name] = entry
    return out


def summarise(
    runs: dict[str, list[dict[str, Any]]], big: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    medians = {
        name: {key: _median([r.get(key) for r in rs]) for key, *_ in METRICS}
        for name, rs in runs.items()
    }
    ranges = {
        name: {key: [min(vals), max(vals)] for key, *_ in METRICS
               if (vals := [r[key] for r in rs if r.get(key) is not None])}
        for name, rs in runs.items()
    }  # fmt: skip
    ratios = {key: _per_repeat(runs, _ratio_of(key)) for key, *_ in METRICS}
    bulk_over_single = _median([r["bulk_send_per_s"] / r["send_per_s"] for r in runs.get(OURS, [])])
    return {
        "medians": medians,
        "ranges": ranges,
        "ratios_to_baseline": ratios,
        "bulk_over_single": bulk_over_single,
        "big": (big_summary := _big_summary(runs, big)),
        "targets": targets(ratios, bulk_over_single, big_summary),
    }


def _check(name: str, value: float | None, op: str, limit: float, unit: str) -> dict[str, Any]:
    met = None if value is None else (value >= limit if op == ">=" else value <= limit)
    return {"target": f"{name} {op} {limit:g}{unit}", "value": value, "met": met}


def targets(
    ratios: dict[str, float | None],
    bulk_over_single: float | None,
    big: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    out = [
        # The issue asks for the drain rate "with start-up time reported apart": the target is
        # the rate once the first task completed; the rate including start-up is shown beside.
        _check("drain rate (start-up apart) xbaseline", ratios["steady_per_s"], ">=", 1.0, "x"),
        _check("drain incl. start-up xbaseline (info)", ratios["drain_per_s"], ">=", 1.0, "x"),
        _check("send→result p50 xbaseline", ratios["latency_p50_ms"], "<=", 2.0, "x"),
        _check("send→result p99 xbaseline", ratios["latency_p99_ms"], "<=", 3.0, "x"),
        # Measured with both systems sending in alternating chunks (see send_interleaved).
        _check("single send xraw INSERT", ratios["send_interleaved_per_s"], ">=", 0.7, "x"),
        _check("single send alone xraw INSERT (info)", ratios["send_per_s"], ">=", 0.7, "x"),
        _check("send_many(1,000) xsingle send", bulk_over_single, ">=", 10.0, "x"),
        _check("CPU per 1k tasks xbaseline", ratios["total_cpu_s_per_1k"], "<=", 2.0, "x"),
    ]
    ours_big = big.get(OURS)
    if ours_big:
        # Median over repeats of (100k steady rate ÷ the same repeat's N-task steady rate).
        out.append(_check("100k steady drain xN-task steady drain",
                          _median(ours_big["steady_x_small"]), ">=", 0.8, "x"))  # fmt: skip
        if growth := ours_big.get("rss_growth"):
            first, last = growth["marks"]
            out.append(_check(f"worker RSS after {last:,} xafter {first:,} (largest)",
                              growth["ratio"], "<=", 1.2, "x"))  # fmt: skip
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(summary: dict[str, Any], args: argparse.Namespace) -> str:
    med, rng, ratios = summary["medians"], summary["ranges"], summary["ratios_to_baseline"]
    names = list(med)
    lines = [
        "",
        f"N={args.n}, processes={args.processes}, repeats={args.repeats}, latency samples="
        f"{args.latency_samples} after {args.warmup} warm-ups. Cells: median [min-max]; "
        "xraw = median over repeats of horsies_django ÷ raw_sql in the same repeat.",
        "",
        "| metric | " + " | ".join(names) + (" | xraw |" if len(names) > 1 else " |"),
        "|---|" + "---|" * len(names) + ("---|" if len(names) > 1 else ""),
    ]
    for key, label, spec, _ in METRICS:
        cells = []
        for name in names:
            lo_hi = rng[name].get(key)
            span = f" [{_fmt(lo_hi[0], spec)}-{_fmt(lo_hi[1], spec)}]" if lo_hi else ""
            cells.append(_fmt(med[name][key], spec) + (span if args.repeats > 1 else ""))
        ratio = f" | {_fmt(ratios[key], '.2f')}x" if len(names) > 1 else ""
        lines.append(f"| {label} | " + " | ".join(cells) + ratio + " |")
    lines.append(f"\nsend_many(1,000) ÷ single send (horsies_django): "
                 f"{_fmt(summary['bulk_over_single'], '.1f')}x")  # fmt: skip
    for name, res in summary["big"].items():
        lo, hi = res["steady_range"]
        ratios_txt = ", ".join(f"{x:.2f}" for x in res["steady_x_small"])
        rss = res.get("rss_growth")
        at = (f"; worker RSS after {rss['marks'][0]:,}: {rss['mb'][0]:.0f} MB, after "
              f"{rss['marks'][1]:,}: {rss['mb'][1]:.0f} MB") if rss else ""  # fmt: skip
        lines.append(
            f"{name} 100k backlog (median of {len(res['steady_x_small'])}): "
            f"{res['drain_per_s']:,.0f}/s incl. start-up, steady {res['steady_per_s']:,.0f}/s "
            f"[{lo:,.0f}-{hi:,.0f}], ÷ same-repeat N-task steady: {ratios_txt}; first after "
            f"{res['first_completion_s']:.2f}s, CPU {res['total_cpu_s_per_1k']:.2f} s/1k{at}"
        )
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for t in summary["targets"]:
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {_fmt(t['value'], '.2f')} | {met} |")
    return "\n".join(lines)
