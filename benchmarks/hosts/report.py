"""The results of one run as Markdown tables (the JSON file holds everything)."""

from __future__ import annotations

import statistics
from typing import Any


def _top_waits(events: dict[str, float], k: int = 4) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in list(events.items())[:k])


def _notify_lock(drain: dict[str, Any]) -> str:
    """Sessions holding / awaiting the NOTIFY lock (pg_database, objid 0), mean per sample."""
    locks = drain.get("object_locks_per_sample", {})
    held = locks.get("pg_database 0 AccessExclusiveLock held", 0.0)
    awaited = locks.get("pg_database 0 AccessExclusiveLock awaited", 0.0)
    return f"{held:.2f} / {awaited:.2f}"


def drain_title(done_notify: bool) -> str:
    if done_notify:
        return "drain (medians over repeats; x 1 host: median of same-repeat ratios)"
    return "drain with the outcome NOTIFY trigger disabled (diagnostic)"


def same_repeat_ratio(drains: list[dict[str, Any]], hosts: int) -> float:
    """Median over repeats of (rate with `hosts`) / (rate with the fewest hosts, same repeat)."""
    fewest = min(d["hosts"] for d in drains)
    base = {d["repeat"]: d["drain_10_90_per_s"] for d in drains if d["hosts"] == fewest}
    return float(
        statistics.median(
            d["drain_10_90_per_s"] / base[d["repeat"]]
            for d in drains
            if d["hosts"] == hosts and d["repeat"] in base
        )
    )


def drain_table(drains: list[dict[str, Any]]) -> list[str]:
    by_hosts: dict[int, list[dict[str, Any]]] = {}
    for d in drains:
        by_hosts.setdefault(d["hosts"], []).append(d)
    lines = [
        "| hosts | children | drain 10-90 % (tasks/s) | x 1 host | incl. start-up (tasks/s) "
        "| PostgreSQL cores | workers cores | machine busy cores | active sessions "
        "| connections per host | NOTIFY lock held / awaited | top wait events |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for hosts, runs in sorted(by_hosts.items()):
        mid = statistics.median(r["drain_10_90_per_s"] for r in runs)
        incl = statistics.median(r["drain_incl_startup_per_s"] for r in runs)
        last = runs[len(runs) // 2]

        def med(key: str, rs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r["cpu"][key] for r in rs))

        lines.append(
            f"| {hosts} | {hosts * last['processes_per_host']} | {mid:,.0f} "
            f"| {same_repeat_ratio(drains, hosts):.2f} "
            f"| {incl:,.0f} | {med('postgres_cores'):.2f} | {med('workers_cores'):.2f} "
            f"| {med('machine_busy_cores'):.2f} of {last['cpu']['machine_cores']} "
            f"| {last['mean_active_sessions']:.1f} "
            f"| {max(last.get('connections_by_host', {}).values(), default=0)} "
            f"| {_notify_lock(last)} "
            f"| {_top_waits(last['wait_events'])} |"
        )
    return lines


def caps_lines(caps: dict[str, Any]) -> list[str]:
    limits, maxima = caps["caps"], caps["max_running"]
    rows = ", ".join(
        f"{'total' if q == '*' else q} {maxima.get(q, 0)}/{cap}" for q, cap in limits.items()
    )
    return [
        f"caps across {caps['hosts']} hosts ({caps['tasks']} tasks of {caps['task_ms']} ms, "
        f"POLL_INTERVAL_MS {caps['poll_interval_ms']}): {caps['tasks_per_s']} tasks/s, mean "
        f"{caps['mean_running_total']} running; "
        f"max CLAIMED+RUNNING / cap: {rows} in {caps['samples']} samples "
        f"({caps['samples_at_cluster_cap']} at the cluster cap) -> "
        + ("never exceeded" if caps["ok"] else f"EXCEEDED {caps['exceeded']}")
    ]


def cutoff_lines(cut: dict[str, Any]) -> list[str]:
    v = cut["verdict"]
    return [
        f"cut-off (worker TCP timeouts: {cut['worker_tcp_timeouts']}): {cut['victim']} of "
        f"{cut['hosts']} hosts cut holding "
        f"{cut['victim_claims_at_cut']} claims; marked DEAD after "
        f"{cut['victim_marked_dead_after_s']} s, its claims recovered after "
        f"{cut['victim_claims_recovered_after_s']} s; link down {cut['link_down_for_s']} s, "
        f"beating again {cut['victim_beat_again_after_link_up_s']} s after, then completed "
        f"{cut['victim_completed_after_link_up']} tasks; "
        f"all {cut['tasks']} done {cut['all_done_after_cut_s']} s after the cut",
        f"  tasks {v['tasks']}, executions {v['executions']}, lost {v['lost']}, outcome not "
        f"recorded once {v['outcome_not_recorded_once']}, completed without running "
        f"{v['completed_without_running']}, late outcome accepted {v['late_outcome_accepted']}",
        f"  recovered from the cut host {v['recovered_from_cut_host']}, of which ran twice "
        f"{v['ran_twice_recovered']}; ran twice unexplained {v['ran_twice_unexplained']}; "
        f"late outcomes discarded (victim's log) {cut['late_outcomes_discarded_logged']}; "
        f"runs by host {cut['runs_by_host']}; connections by host {cut['connections_by_host']}, "
        f"{cut['victim_worker_sessions_from_before_cut_at_end']} of the victim's from before "
        "the cut -> " + ("OK" if cut["ok"] else "FAILED"),
    ]
