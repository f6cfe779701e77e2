"""A host cut off mid-drain (`ip link set <its veth> down`), recovered by the others, fenced
when it comes back.

With short staleness settings (`RECOVERY`), `recorded` tasks (each records its execution in
`hosts_run`) drain on every host. Once a quarter are done and the victim is running some, its
link goes down. The harness then watches, over loopback, when the victim's worker row turns
DEAD and when none of the victim's claims is left (the rescuer recorded its RUNNING ones
WORKER_CRASHED; they retry elsewhere). The link comes back after `cut_s` (and not before the
recovery); the drain ends; workers stop gracefully, so the victim tries to record the outcomes
it kept, which the claim generation refuses ("discarded the late outcome" in its log). Then
`records.judge` checks every task against its attempts and runs.
"""

from __future__ import annotations

import time
from typing import Any, Final

from benchmarks.hosts import netns, records
from benchmarks.hosts.cluster import Cluster, log, wait_until
from benchmarks.hosts.drain import COMPLETED, UNFINISHED
from benchmarks.hosts.naming import Host
from benchmarks.hosts.sampling import CONNECTIONS_BY_HOST

RECOVERY: Final = {
    "HEARTBEAT_INTERVAL_MS": 1_000,
    "CLAIM_LEASE_MS": 3_000,
    "WORKER_STALE_AFTER_MS": 3_000,
    "RESCUER_INTERVAL_MS": 500,
    "POLL_INTERVAL_MS": 1_000,
}
TASK_NAME: Final = "hosts.recorded"
TIMEOUT_S: Final = 600.0
WORKER_ID: Final = "SELECT id::text FROM horsies_worker WHERE name = %s"
WORKER_STATE: Final = "SELECT state FROM horsies_worker WHERE id = %s"
HELD_BY: Final = """
SELECT count(*) FROM horsies_task WHERE claimed_by = %s AND status IN ('CLAIMED', 'RUNNING')
"""
RUNNING_ON: Final = "SELECT count(*) FROM horsies_task WHERE claimed_by = %s AND status = 'RUNNING'"
DB_NOW: Final = "SELECT clock_timestamp()"
BEAT_SINCE: Final = """
SELECT count(*) FROM horsies_worker WHERE id = %s AND state = 'RUNNING' AND heartbeat_at > %s
"""
COMPLETED_BY_SINCE: Final = """
SELECT count(*) FROM horsies_task_attempt
WHERE worker_id = %s AND outcome = 'COMPLETED' AND started_at > %s
"""
RUNS_BY_HOST: Final = "SELECT host, count(*) FROM hosts_run GROUP BY 1 ORDER BY 1"
RUNS_AFTER: Final = "SELECT count(*) FROM hosts_run WHERE host = %s AND recorded_at > %s"
# The victim's worker sessions opened before the cut and still open on the server at the end.
OLD_WORKER_SESSIONS: Final = """
SELECT count(*) FROM pg_stat_activity
WHERE client_addr = %s::inet AND application_name = 'horsies_worker' AND backend_start < %s
"""
LATE_OUTCOME_LOG: Final = "discarded the late outcome"
# Lines of the victim's log that tell how it lived through the cut.
LOG_MARKERS: Final = ("lost", "reconnect", "discarded", "could not")


def send(n: int, ms: int) -> None:
    from benchmarks.hosts.benchapp.tasks import recorded

    for start in range(0, n, 1_000):
        batch = [{"i": i, "ms": ms} for i in range(start, min(n, start + 1_000))]
        for result in recorded.send_many(batch):
            if result.is_err():
                raise RuntimeError(f"send_many failed: {result.err_value}")


def run(
    cluster: Cluster,
    host_count: int,
    processes: int,
    n: int,
    ms: int,
    cut_s: float,
    tcp_timeouts: bool = True,
) -> dict[str, Any]:
    """One cut-off; `tcp_timeouts=False` runs the workers without the `queue` alias's TCP
    timeouts (see `benchmarks.hosts.settings`)."""
    if host_count < 2:
        raise ValueError("a cut-off needs at least two hosts")
    cluster.reset()
    send(n, ms)
    label = "cut" if tcp_timeouts else "cut-no-tcp-timeouts"
    started = cluster.start_workers(host_count, processes, RECOVERY, label, tcp_timeouts)
    victim: Host = cluster.hosts[1]
    victim_log = next(w for w in started if w.host == victim).group.log_path

    def count(query: str, *params: Any) -> int:
        return int(cluster.sql(query, params or None)[0][0])

    def alive() -> None:
        for worker in started:
            worker.group.check_alive()

    rows: list[tuple[Any, ...]] = []

    def victim_registered() -> bool:
        alive()
        rows[:] = cluster.sql(WORKER_ID, (victim.name,))
        return bool(rows)

    wait_until(f"{victim.name}'s worker row", victim_registered, TIMEOUT_S)
    victim_id = str(rows[0][0])
    wait_until(
        f"a quarter done and {victim.name} running tasks",
        lambda: count(COMPLETED) >= n // 4 and count(RUNNING_ON, victim_id) > 0,
        TIMEOUT_S,
    )
    held_at_cut = count(HELD_BY, victim_id)
    cut_at_db = cluster.sql(DB_NOW)[0][0]
    netns.set_link(victim, up=False)
    t_cut = time.perf_counter()
    log(f"{victim.name} cut off holding {held_at_cut} claims")
    dead_after = recovered_after = None
    while recovered_after is None or time.perf_counter() - t_cut < cut_s:
        now = time.perf_counter() - t_cut
        if now > TIMEOUT_S:
            raise RuntimeError(f"{victim.name}'s claims were not recovered")
        if dead_after is None and cluster.sql(WORKER_STATE, (victim_id,))[0][0] == "DEAD":
            dead_after = now
        if recovered_after is None and count(HELD_BY, victim_id) == 0:
            recovered_after = now
        time.sleep(0.05)
    up_at_db = cluster.sql(DB_NOW)[0][0]
    netns.set_link(victim, up=True)
    down_for = time.perf_counter() - t_cut
    log(f"{victim.name} back after {down_for:.1f}s")
    rejoined_after = wait_until(
        f"{victim.name} to beat again", lambda: count(BEAT_SINCE, victim_id, up_at_db) > 0,
        TIMEOUT_S, 0.05,
    )  # fmt: skip
    wait_until("every task to finish", lambda: count(UNFINISHED) == 0, TIMEOUT_S, 0.1)
    all_done_after = time.perf_counter() - t_cut
    connections = dict(cluster.sql(CONNECTIONS_BY_HOST))
    old_sessions = count(OLD_WORKER_SESSIONS, victim.inside_address, cut_at_db)
    cluster.stop_workers()
    with cluster.conn.cursor() as cur:
        verdict = records.judge(records.task_records(cur, TASK_NAME, [victim_id]))
    victim_lines = victim_log.read_text(errors="replace").splitlines()
    late_logged = sum(LATE_OUTCOME_LOG in line for line in victim_lines)
    return {
        "hosts": host_count,
        "processes_per_host": processes,
        "worker_tcp_timeouts": tcp_timeouts,
        "tasks": n,
        "task_ms": ms,
        "settings": RECOVERY,
        "victim": victim.name,
        "victim_claims_at_cut": held_at_cut,
        "victim_marked_dead_after_s": None if dead_after is None else round(dead_after, 2),
        "victim_claims_recovered_after_s": round(recovered_after, 2),
        "link_down_for_s": round(down_for, 2),
        "victim_beat_again_after_link_up_s": round(rejoined_after, 2),
        "victim_completed_after_link_up": count(COMPLETED_BY_SINCE, victim_id, up_at_db),
        "all_done_after_cut_s": round(all_done_after, 2),
        "victim_runs_recorded_after_cut": count(RUNS_AFTER, victim.name, cut_at_db),
        "runs_by_host": dict(cluster.sql(RUNS_BY_HOST)),
        "connections_by_host": connections,
        "late_outcomes_discarded_logged": late_logged,
        "victim_worker_sessions_from_before_cut_at_end": old_sessions,
        "victim_log": [line for line in victim_lines if any(m in line for m in LOG_MARKERS)][:30],
        "verdict": verdict.summary(),
        "ok": verdict.ok,
    }
