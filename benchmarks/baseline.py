"""The raw-SQL baseline: the least a PostgreSQL queue with one commit per step can do.

Producer: one INSERT per send (autocommit), bulk = one INSERT ... SELECT FROM unnest per chunk.
Worker (`python -m benchmarks.baseline URL`, one process per slot): claim one row with
UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING, run the no-op,
mark it done with one UPDATE; when idle, wait on LISTEN fed by a statement-level trigger.
Result wait: poll the status row every 1 ms (there is no result API to wait on).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import psycopg
from psycopg.types.json import Jsonb

from benchmarks.measure import WorkerGroup

REPO_ROOT = Path(__file__).resolve().parent.parent

SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_job (
    id          bigserial PRIMARY KEY,
    status      text        NOT NULL DEFAULT 'queued',
    payload     jsonb       NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS baseline_job_queued ON baseline_job (id) WHERE status = 'queued';
CREATE OR REPLACE FUNCTION baseline_job_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('baseline_job', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS baseline_job_wake ON baseline_job;
CREATE TRIGGER baseline_job_wake AFTER INSERT ON baseline_job
    FOR EACH STATEMENT EXECUTE FUNCTION baseline_job_wake();
"""

INSERT = "INSERT INTO baseline_job (payload) VALUES (%s) RETURNING id"
INSERT_MANY = (
    "INSERT INTO baseline_job (payload) "
    "SELECT jsonb_build_object('i', x) FROM unnest(%s::int[]) AS x"
)
CLAIM = (
    "UPDATE baseline_job SET status = 'running', started_at = now() "
    "WHERE id = (SELECT id FROM baseline_job WHERE status = 'queued' ORDER BY id "
    "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, payload"
)
DONE = "UPDATE baseline_job SET status = 'done', finished_at = now() WHERE id = %s"
STATUS = "SELECT status FROM baseline_job WHERE id = %s"


class RawSqlQueue:
    name = "raw_sql"
    count_total_sql = "SELECT count(*) FROM baseline_job"
    any_done_sql = (
        "SELECT count(*) FROM (SELECT 1 FROM baseline_job WHERE status = 'done' LIMIT 1) AS first"
    )
    count_done_sql = "SELECT count(*) FROM baseline_job WHERE status = 'done'"
    count_failed_sql = "SELECT count(*) FROM baseline_job WHERE status = 'failed'"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _db(self) -> psycopg.Connection[tuple[object, ...]]:
        assert self.conn is not None, "prepare() first"
        return self.conn

    def prepare(self) -> None:
        self.conn = psycopg.connect(self.database_url, autocommit=True)
        self.conn.execute(SCHEMA)

    def clear(self) -> None:
        self._db().execute("SET lock_timeout = '20s'")
        self._db().execute("TRUNCATE baseline_job RESTART IDENTITY")

    def send_one(self, i: int) -> None:
        self._db().execute(INSERT, (Jsonb({"i": i}),))

    def send_bulk(self, items: list[int]) -> None:
        self._db().execute(INSERT_MANY, (items,))

    def send_and_wait(self, i: int, timeout_s: float) -> None:
        db = self._db()
        row = db.execute(INSERT, (Jsonb({"i": i}),)).fetchone()
        assert row is not None
        job_id = row[0]
        deadline = time.perf_counter() + timeout_s
        while True:
            status_row = db.execute(STATUS, (job_id,)).fetchone()
            assert status_row is not None
            if status_row[0] == "done":
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"raw_sql job {job_id} not done after {timeout_s}s")
            time.sleep(0.001)

    def worker_group(self, processes: int, log_path: Path) -> WorkerGroup:
        argv = [sys.executable, "-m", "benchmarks.baseline", self.database_url]
        return WorkerGroup([argv] * processes, {"PYTHONPATH": str(REPO_ROOT)}, REPO_ROOT, log_path)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def noop(payload: object) -> None:
    return None


def worker_main(database_url: str) -> None:
    """One baseline worker process: claim one, run it, mark it done; LISTEN when idle."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN baseline_job")
        while not stopping:
            row = conn.execute(CLAIM).fetchone()
            if row is None:
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    pass
                continue
            noop(row[1])
            conn.execute(DONE, (row[0],))


if __name__ == "__main__":
    worker_main(sys.argv[1])
