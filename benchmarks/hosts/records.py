"""Run records (one row per execution of `hosts.recorded`) and the exactly-once verdict.

Every function takes a DB-API cursor (Django's or psycopg's), so the harness and the test
suite run the same statements. The verdict is computed from the task, attempt and run rows:
- every task COMPLETED, with exactly one COMPLETED attempt (its recorded outcome);
- a task recovered from a cut-off worker (a CRASHED attempt by one of `cut_workers`) may have
  run twice (once on the cut-off host, once after the recovery): counted and reported;
  a task that ran twice without having been recovered is a bug;
- fencing: the COMPLETED attempt of a recovered task started after its recovery (a late
  outcome of the cut-off run, had it been accepted, would have started before).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

RUNS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS hosts_run (
    id bigserial PRIMARY KEY,
    i integer NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
RUNS_INDEX: Final = "CREATE INDEX IF NOT EXISTS hosts_run_i ON hosts_run (i)"
INSERT_RUN: Final = "INSERT INTO hosts_run (i, host, pid) VALUES (%s, %s, %s)"
CLEAR_RUNS: Final = "TRUNCATE hosts_run"
TASK_RECORDS: Final = """
SELECT (t.kwargs->>'i')::int, t.status,
    (SELECT count(*) FROM horsies_task_attempt a
      WHERE a.task_id = t.id AND a.outcome = 'COMPLETED'),
    rec.at IS NOT NULL,
    coalesce((SELECT min(a.started_at) FROM horsies_task_attempt a
      WHERE a.task_id = t.id AND a.outcome = 'COMPLETED') < rec.at, false),
    (SELECT count(*) FROM hosts_run r WHERE r.i = (t.kwargs->>'i')::int)
FROM horsies_task t
LEFT JOIN LATERAL (
    SELECT max(a.finished_at) AS at FROM horsies_task_attempt a
    WHERE a.task_id = t.id AND a.outcome = 'CRASHED' AND a.worker_id::text = ANY(%s)
) rec ON true
WHERE t.task_name = %s
ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    i: int
    status: str
    completed_attempts: int
    recovered: bool  # a CRASHED attempt by a cut-off worker
    completed_before_recovery: bool  # its COMPLETED attempt started before that
    runs: int


@dataclass
class Verdict:
    tasks: int = 0
    runs: int = 0
    lost: list[int] = field(default_factory=list)
    outcome_not_once: list[int] = field(default_factory=list)
    never_ran: list[int] = field(default_factory=list)
    late_outcome_accepted: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    ran_twice_recovered: list[int] = field(default_factory=list)
    ran_twice_unexplained: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.outcome_not_once
            or self.never_ran
            or self.late_outcome_accepted
            or self.ran_twice_unexplained
        )

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tasks": self.tasks,
            "executions": self.runs,
            "lost": len(self.lost),
            "outcome_not_recorded_once": len(self.outcome_not_once),
            "completed_without_running": len(self.never_ran),
            "late_outcome_accepted": len(self.late_outcome_accepted),
            "recovered_from_cut_host": len(self.recovered),
            "ran_twice_recovered": len(self.ran_twice_recovered),
            "ran_twice_unexplained": len(self.ran_twice_unexplained),
            "examples": {
                name: values[:10]
                for name, values in (
                    ("lost", self.lost),
                    ("outcome_not_once", self.outcome_not_once),
                    ("never_ran", self.never_ran),
                    ("late_outcome_accepted", self.late_outcome_accepted),
                    ("ran_twice_unexplained", self.ran_twice_unexplained),
                )
                if values
            },
        }


def create_runs_table(cur: Any) -> None:
    cur.execute(RUNS_TABLE)
    cur.execute(RUNS_INDEX)


def clear_runs(cur: Any) -> None:
    cur.execute(CLEAR_RUNS)


def record_run(cur: Any, i: int, host: str, pid: int) -> None:
    cur.execute(INSERT_RUN, (i, host, pid))


def task_records(cur: Any, task_name: str, cut_workers: Sequence[str]) -> list[TaskRecord]:
    cur.execute(TASK_RECORDS, (list(cut_workers), task_name))
    return [
        TaskRecord(int(i), str(s), int(c), bool(r), bool(b), int(n))
        for i, s, c, r, b, n in cur.fetchall()
    ]


def judge(records: Iterable[TaskRecord]) -> Verdict:
    verdict = Verdict()
    for rec in records:
        verdict.tasks += 1
        verdict.runs += rec.runs
        if rec.status != "COMPLETED":
            verdict.lost.append(rec.i)
        if rec.completed_attempts != 1:
            verdict.outcome_not_once.append(rec.i)
        if rec.runs == 0:
            verdict.never_ran.append(rec.i)
        if rec.recovered:
            verdict.recovered.append(rec.i)
            if rec.completed_before_recovery:
                verdict.late_outcome_accepted.append(rec.i)
        if rec.runs > 1:
            bucket = verdict.ran_twice_recovered if rec.recovered else verdict.ran_twice_unexplained
            bucket.append(rec.i)
    return verdict
