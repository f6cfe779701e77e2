"""A deep horsies_task table: drain rate, the claim's plan, and prune under a steady stream.

    ./dev bench-deep [--finished 10000000] [--pending 1000000] [--sample 50000]
        [--shallow 10000] [--processes 4] [--repeats 3] [--stream-seconds 120]
        [--stream-rate 2000] [--prune-age 10s] [--prune-every 2] [--no-stream] [--no-deep]
        [--candidate-sql FILE|reverse:MIGRATION]

Two databases on the server of DATABASE_URL, each migrated: a shallow one (SHALLOW pending
tasks on an otherwise empty table, sent anew before each of its drains) and the deep one
(FINISHED finished tasks with their attempts, benchmarks/deep_fill.py, then PENDING pending
tasks sent with send_many, then VACUUM ANALYZE). Per repeat, in alternating order, a worker of
PROCESSES children drains the shallow table, and SAMPLE of the deep table's pending tasks; the
rates compared are the steady ones (completions after the first one per second). The claim is
EXPLAINed (ANALYZE, BUFFERS) as the worker prepares it, on both tables and on the deep one
again right after its drains. With --candidate-sql, a SQL file (a schema change before its
migration exists) or a migration's reverse (an old version, e.g.
reverse:0012_linear_outcome_triggers, benchmarks/candidate_sql.py) is then run on
both databases and the drains repeated, so the two sets compare on one fill. Then the stream
phases of benchmarks/deep_stream.py run on the shallow database. Results: a table on stdout
and benchmarks/results/deep-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

from benchmarks import environment  # noqa: E402
from benchmarks.candidate_sql import read_candidate  # noqa: E402
from benchmarks.deep_drain import (  # noqa: E402
    ClaimPlan,
    DrainSample,
    drain_sample,
    explain_claim,
    plan_cache_choice,
)
from benchmarks.deep_fill import fill_finished  # noqa: E402
from benchmarks.deep_prune import STATEMENTS, explain_prune_batch  # noqa: E402
from benchmarks.deep_stream import TUNED, PhaseConfig, run_phase  # noqa: E402
from benchmarks.workloads import log  # noqa: E402

SETTINGS = "benchmarks.benchproject.settings"
EXPLAIN_LIMIT = 8  # tasks per claim: a 4-process worker's idle slots plus its claim-ahead
PLAN_MODES = ("force_custom_plan", "force_generic_plan")
SIZES = """
SELECT c.relname, pg_relation_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.relname IN ('horsies_task', 'horsies_task_attempt')
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--finished", type=int, default=10_000_000, help="finished rows (10M)")
    p.add_argument("--pending", type=int, default=1_000_000, help="pending rows (1M)")
    p.add_argument("--sample", type=int, default=50_000, help="deep tasks per drain (50k)")
    p.add_argument("--shallow", type=int, default=10_000, help="shallow backlog (10k)")
    p.add_argument("--processes", type=int, default=4, help="worker children (4)")
    p.add_argument("--repeats", type=int, default=3, help="drains per table (3)")
    p.add_argument("--stream-seconds", type=int, default=120, help="per stream phase (120)")
    p.add_argument("--stream-rate", type=float, default=2000.0, help="tasks/s sent (2000)")
    p.add_argument("--prune-age", default="10s", help="prune rows finished before (10s)")
    p.add_argument("--prune-every", type=float, default=2.0, help="seconds between passes (2)")
    p.add_argument("--no-stream", action="store_true", help="skip the stream phases")
    p.add_argument("--no-deep", action="store_true", help="skip the fill, drains and plans")
    p.add_argument(
        "--candidate-sql", default=None, metavar="FILE|reverse:MIGRATION",
        help="SQL run on both databases after the drains, which then run again",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    drain_sets = 2 if args.candidate_sql else 1
    if args.sample * args.repeats * drain_sets > args.pending:
        p.error("--sample x --repeats (x 2 with --candidate-sql) must not exceed --pending")
    return args


def _database_url(url: str, dbname: str) -> str:
    """`url` (a postgresql:// URL, as django-environ reads it) naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def _django(args: list[str], url: str) -> str:
    """Run a bench-project Django process on `url`; its stdout."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out = subprocess.run(
        [sys.executable, *args], env=env, cwd=REPO_ROOT, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return out.stdout


def _migrate(url: str) -> None:
    _django(["-m", "django", "migrate", "--settings", SETTINGS, "-v0"], url)


def _backlog(url: str, n: int) -> dict[str, Any]:
    stdout = _django(["-m", "benchmarks.deep_procs", "backlog", str(n)], url)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _now(url: str) -> datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        value: datetime = row[0]
        return value


def _sql(url: str, *statements: str) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for s in statements:
            conn.execute(s.encode())
    return time.perf_counter() - t0


def _sizes(url: str) -> dict[str, dict[str, float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(SIZES).fetchall()
    mb = 2**20
    return {r[0]: {"heap_mb": r[1] / mb, "indexes_mb": r[2] / mb, "total_mb": r[3] / mb}
            for r in rows}  # fmt: skip


def _plans(url: str, label: str) -> list[dict[str, Any]]:
    out = []
    for mode in PLAN_MODES:
        plan: ClaimPlan = explain_claim(url, EXPLAIN_LIMIT, mode)
        log(f"claim plan on {label} ({mode}): buffers {plan.buffers} "
            f"(hit {plan.shared_hit}, read {plan.shared_read}), {plan.execution_ms:.2f} ms, "
            f"claim index {plan.uses_claim_index}, seq scan {plan.seq_scan}")  # fmt: skip
        out.append({"table": label, **asdict(plan)})
    choice = plan_cache_choice(url, EXPLAIN_LIMIT)
    log(f"plan cache on {label} (plan_cache_mode auto): {choice}")
    out.append({"table": label, "mode": "auto", "plan_cache": choice})
    return out


def shallow_round(url: str, n: int, processes: int, log_dir: Path, r: str) -> dict[str, Any]:
    _sql(url, "TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")
    since = _now(url)
    _backlog(url, n)
    _sql(url, "VACUUM ANALYZE horsies_task", "VACUUM ANALYZE horsies_task_attempt")
    res = drain_sample(url, processes, n, since, log_dir / f"shallow.{r}.log")
    log(f"shallow {n:,}: steady {res.steady_per_s:,.0f}/s, incl. start-up "
        f"{res.per_s_incl_startup:,.0f}/s, first after {res.first_completion_s:.2f}s; "
        f"{_batches(res)}")  # fmt: skip
    return asdict(res)


def deep_round(
    url: str, sample: int, processes: int, since: datetime, log_dir: Path, r: str
) -> dict[str, Any]:
    _sql(url, "VACUUM ANALYZE horsies_task", "VACUUM ANALYZE horsies_task_attempt")
    res = drain_sample(url, processes, sample, since, log_dir / f"deep.{r}.log")
    log(f"deep sample {sample:,}: steady {res.steady_per_s:,.0f}/s, incl. start-up "
        f"{res.per_s_incl_startup:,.0f}/s, first after {res.first_completion_s:.2f}s; "
        f"killed {res.needed_kill}, left RUNNING {res.left_running}, "
        f"crashed so far {res.crashed_so_far}; {_batches(res)}")  # fmt: skip
    return asdict(res)


def _batches(res: DrainSample) -> str:
    return (
        f"outcomes recorded in {res.finish_statements:,} statements, "
        f"{res.rows_per_finish:,.0f} rows each on average, at most {res.rows_per_finish_max:,}; "
        f"other processes used {_cores(res.other_cores)} cores"
    )


def drain_set(
    args: argparse.Namespace, url: str, shallow_url: str, since: datetime, log_dir: Path,
    label: str, after_first: Callable[[], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """REPEATS drains of each table, in alternating order; their rates and same-repeat ratios.
    `label` prefixes the worker logs' names; `after_first` runs after the first repeat."""
    drains: dict[str, list[dict[str, Any]]] = {"shallow": [], "deep": []}
    for r in range(args.repeats):
        steps = ["shallow", "deep"] if r % 2 == 0 else ["deep", "shallow"]
        for step in steps:
            tag = f"{label}{r}"
            if step == "shallow":
                drains[step].append(
                    shallow_round(shallow_url, args.shallow, args.processes, log_dir, tag)
                )
            else:
                drains[step].append(
                    deep_round(url, args.sample, args.processes, since, log_dir, tag)
                )
        if r == 0 and after_first is not None:
            after_first()
    ratios = [
        d["steady_per_s"] / s["steady_per_s"]
        for s, d in zip(drains["shallow"], drains["deep"], strict=True)
    ]
    log(f"deep / shallow steady rate ({label or 'as migrated'}), per repeat: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}")  # fmt: skip
    return {
        "drains": drains,
        "steady_ratio_deep_to_shallow": {"per_repeat": ratios, "median": statistics.median(ratios)},
    }


def deep_part(
    args: argparse.Namespace, url: str, shallow_url: str, log_dir: Path
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    log(f"filling {args.finished:,} finished rows")
    res["fill"] = {**asdict(t := fill_finished(url, args.finished, log)), "total_s": t.total_s}
    log(f"sending {args.pending:,} pending tasks (send_many)")
    since = _now(url)
    res["pending_send"] = _backlog(url, args.pending)
    log(f"sent at {res['pending_send']['per_s']:,.0f}/s; VACUUM ANALYZE")
    res["vacuum_analyze_s"] = _sql(
        url, "VACUUM ANALYZE horsies_task", "VACUUM ANALYZE horsies_task_attempt"
    )
    res["sizes_after_fill"] = _sizes(url)
    _sql(shallow_url, "TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")
    _backlog(shallow_url, args.shallow)
    _sql(shallow_url, "VACUUM ANALYZE horsies_task", "VACUUM ANALYZE horsies_task_attempt")
    res["plans"] = _plans(shallow_url, f"shallow ({args.shallow:,} pending)")
    res["plans"] += _plans(url, "deep, after VACUUM ANALYZE")

    def plans_after_first() -> None:
        # Before the next VACUUM: the sample's dead entries still in the claim index.
        res["plans"] += _plans(url, f"deep, right after draining {args.sample:,} (no VACUUM)")

    res.update(drain_set(args, url, shallow_url, since, log_dir, "", plans_after_first))
    res["prune_batches"] = _prune_batches(url)
    if args.candidate_sql:
        sql = read_candidate(args.candidate_sql)
        log(f"running {args.candidate_sql} on both databases; the drains again")
        _sql(url, sql)
        _sql(shallow_url, sql)
        res["candidate"] = {
            "sql_file": args.candidate_sql,
            **drain_set(args, url, shallow_url, since, log_dir, "candidate."),
        }
    return res


PRUNE_AGES = {"nothing due (31d)": 31 * 86_400.0, "a batch due (7d)": 7 * 86_400.0}


def _prune_batches(url: str) -> list[dict[str, Any]]:
    out = []
    for label, age in PRUNE_AGES.items():
        for statement in STATEMENTS:
            r = explain_prune_batch(url, statement, age, 5_000)
            log(f"prune batch, {label}, {statement}'s statement: {r['execution_ms']:.1f} ms, "
                f"{r['buffers']} buffers, {', '.join(r['scans'])}")  # fmt: skip
            out.append({"due": label, **r})
    return out


STREAM_PHASES = (
    PhaseConfig("no prune, default autovacuum", prune=False),
    PhaseConfig("prune, default autovacuum", prune=True),
    PhaseConfig("prune, tuned tables", prune=True, table_params=TUNED),
    PhaseConfig("prune, tuned tables, naptime 10s", prune=True, table_params=TUNED, naptime="10s"),
)


def stream_part(args: argparse.Namespace, url: str, log_dir: Path) -> list[dict[str, Any]]:
    out = []
    for cfg in STREAM_PHASES:
        log(f"stream phase: {cfg.name} ({args.stream_seconds}s at {args.stream_rate:,.0f}/s)")
        fig = run_phase(
            url, cfg, seconds=args.stream_seconds, rate=args.stream_rate,
            processes=args.processes, age=args.prune_age, every_s=args.prune_every,
            log_dir=log_dir,
        )  # fmt: skip
        log(json.dumps(fig))
        out.append(fig)
    _sql(url, "ALTER SYSTEM RESET autovacuum_naptime", "SELECT pg_reload_conf()")
    return out


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _render_drains(title: str, part: dict[str, Any]) -> list[str]:
    lines = [
        f"\nDrains, {title}:",
        "| table | steady drain (tasks/s), per repeat | median | incl. start-up, median "
        "| rows per outcome statement, per repeat | other processes' CPU (cores), per repeat |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, runs in part["drains"].items():
        steady = [x["steady_per_s"] for x in runs]
        incl = [x["per_s_incl_startup"] for x in runs]
        lines.append(
            f"| {name} | {', '.join(f'{x:,.0f}' for x in steady)} | "
            f"{statistics.median(steady):,.0f} | {statistics.median(incl):,.0f} | "
            f"{', '.join(f'{x["rows_per_finish"]:,.0f}' for x in runs)} | "
            f"{', '.join(_cores(x['other_cores']) for x in runs)} |"
        )
    ratio = part["steady_ratio_deep_to_shallow"]
    lines.append(
        f"\ndeep / shallow steady rate: median {ratio['median']:.2f} "
        f"(per repeat {', '.join(f'{x:.2f}' for x in ratio['per_repeat'])})"
    )
    return lines


def render(result: dict[str, Any]) -> str:
    lines = []
    deep = result.get("deep")
    if deep:
        f, sent = deep["fill"], deep["pending_send"]
        lines += [
            f"\nfill: {f['rows']:,} finished rows + attempts in {f['total_s']:.0f}s "
            f"(insert {f['insert_s']:.0f}s, indexes {f['build_indexes_s']:.0f}s); "
            f"{sent['sent']:,} pending sent at {sent['per_s']:,.0f}/s; "
            f"VACUUM ANALYZE {deep['vacuum_analyze_s']:.0f}s",
        ]
        lines += _render_drains("as migrated", deep)
        if "candidate" in deep:
            lines += _render_drains(f"with {deep['candidate']['sql_file']}", deep["candidate"])
        lines += [
            "\n| claim on | plan cache | buffers: all (claim index scan) | est. cost | ms "
            "| claim index, scanned by | seq scan |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for p in deep["plans"]:
            if "plan_cache" in p:
                lines.append(f"| {p['table']} | auto: {p['plan_cache']} | | | | | |")
                continue
            lines.append(
                f"| {p['table']} | {p['mode']} | {p['shared_hit'] + p['shared_read']} "
                f"({p['claim_index_buffers']}) | {p['estimated_cost']:,.0f} | "
                f"{p['execution_ms']:.2f} | {p['claim_index_node'] or 'not used'} | "
                f"{p['seq_scan']} |"
            )
    if deep:
        lines += [
            "\n| one prune batch (5,000), deep table | statement | ms | buffers | scans |",
            "|---|---|---:|---:|---|",
        ]
        for b in deep.get("prune_batches", []):
            lines.append(
                f"| {b['due']} | {b['statement']} | {b['execution_ms']:,.1f} | "
                f"{b['buffers']:,} | {', '.join(b['scans'])} |"
            )
    for fig in result.get("stream", []):
        c, lat = fig["completions_per_s"], fig["claim_latency_ms"]
        pr = fig.get("prune", {})
        lines.append(
            f"\n{fig['phase']}: sent {fig['sent_per_s'] or 0:,.0f}/s; completions/s min "
            f"{c['min']} median {c['median']} max {c['max']} ({c['zero_seconds']} empty of "
            f"{c['seconds']} s); claim latency p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} ms; "
            f"finished rows max {fig['finished_rows']['max']:,}; dead tuples max "
            f"{fig['dead_tuples_max']}; autovacuum runs {fig['autovacuum_runs']}; sizes MB "
            f"{ {k: round(v) for k, v in fig['total_size_mb_last'].items()} }"
            + (
                f"; prune {pr['deleted_tasks_per_s'] or 0:,.0f} tasks/s deleted, busy "
                f"{(pr['busy_share'] or 0) * 100:.0f} %, longest pass {pr['pass_s_max'] or 0:.2f}s"
                if pr
                else ""
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set; run it as ./dev bench-deep", file=sys.stderr)
        return 2
    started = time.time()
    log_dir = Path(tempfile.mkdtemp(prefix="horsies-deep-logs-"))
    dbname = conninfo_to_dict(url).get("dbname") or "postgres"
    shallow_db = f"{dbname}_shallow"
    shallow_url = _database_url(url, shallow_db)
    _sql(url, f'DROP DATABASE IF EXISTS "{shallow_db}"', f'CREATE DATABASE "{shallow_db}"')
    log(f"migrating {dbname} and {shallow_db} (worker logs in {log_dir})")
    _migrate(url)
    _migrate(shallow_url)
    result: dict[str, Any] = {
        "timestamp_utc": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": environment.machine(),
        "source": environment.source_fingerprint(REPO_ROOT),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        result["postgres"] = environment.postgres_settings(conn)
    if not args.no_deep:
        result["deep"] = deep_part(args, url, shallow_url, log_dir)
    if not args.no_stream:
        result["stream"] = stream_part(args, shallow_url, log_dir)
    result["duration_s"] = time.time() - started
    print(render(result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"deep-{result['timestamp_utc']}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
