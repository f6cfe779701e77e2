"""The many-hosts harness: drain rate with 1, 2 and 4 hosts, queue caps across hosts, and a
host cut off mid-drain. Root only; builds and removes its own namespaces and PostgreSQL.

    ./dev bench-hosts [--hosts 1,2,4] [--processes 2] [--n 20000] [--repeats 1]
    python -m benchmarks.hosts.run --quick    # smoke run (small backlogs)

Writes `benchmarks/results/hosts-<UTC timestamp>.json` and prints the tables. Exits 1 if a
cap was exceeded or the cut-off's verdict is not clean.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import environment  # noqa: E402
from benchmarks.hosts import caps, cutoff, drain, report  # noqa: E402
from benchmarks.hosts.cluster import log, running_cluster  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--hosts", default="1,2,4", help="host counts of the drain (1,2,4)")
    parser.add_argument("--processes", type=int, default=2, help="children per host (2)")
    parser.add_argument("--n", type=int, default=20_000, help="no-op tasks per drain")
    parser.add_argument("--repeats", type=int, default=1, help="drains per host count")
    parser.add_argument("--caps-tasks", type=int, default=200, help="tasks per capped queue")
    parser.add_argument(
        "--caps-poll-ms", type=int, default=100, help="POLL_INTERVAL_MS of the second caps run"
    )
    parser.add_argument("--task-ms", type=int, default=30, help="sleep of a capped task")
    parser.add_argument("--cut-tasks", type=int, default=6_000, help="tasks of the cut-off")
    parser.add_argument("--cut-ms", type=int, default=20, help="work of a cut-off task")
    parser.add_argument("--cut-seconds", type=float, default=10.0, help="link down at least")
    parser.add_argument(
        "--only",
        default="drain,caps,cutoff,cutoff-no-tcp-timeouts",
        help="phases to run (drain,caps,cutoff,cutoff-no-tcp-timeouts)",
    )
    parser.add_argument(
        "--diagnose-notify",
        action="store_true",
        help="also drain with the outcome NOTIFY trigger disabled (a diagnostic)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small backlogs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.caps_tasks, args.cut_tasks, args.cut_seconds = 2_000, 100, 600, 6.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    counts = [int(c) for c in args.hosts.split(",")]
    phases = set(args.only.split(","))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": environment.machine(),
        "packages": environment.packages(),
        "source": environment.source_fingerprint(REPO_ROOT),
        "drains": [],
    }
    with tempfile.TemporaryDirectory(prefix="horsies-hosts-") as logs:
        log(f"worker logs in {logs}")
        with running_cluster(max(counts), Path(logs)) as cluster:
            results["postgres"] = environment.postgres_settings(cluster.conn)
            if "drain" in phases:
                for repeat in range(args.repeats):
                    order = counts if repeat % 2 == 0 else counts[::-1]
                    for count in order:
                        for notify in (True, False) if args.diagnose_notify else (True,):
                            log(f"drain: {count} host(s), repeat {repeat + 1}, notify {notify}")
                            result = drain.run(cluster, count, args.processes, args.n, notify)
                            results["drains"].append({"repeat": repeat, **result})
            if "caps" in phases:
                results["caps"] = []
                for poll_ms in (None, args.caps_poll_ms):
                    log(f"caps: {max(counts)} hosts, POLL_INTERVAL_MS {poll_ms or 'default'}")
                    results["caps"].append(
                        caps.run(
                            cluster, max(counts), args.processes, args.caps_tasks,
                            args.task_ms, poll_ms,
                        )
                    )  # fmt: skip
            results["cutoffs"] = []
            for tcp_timeouts in (True, False):
                if ("cutoff" if tcp_timeouts else "cutoff-no-tcp-timeouts") not in phases:
                    continue
                log(f"cut-off: {max(counts)} hosts, worker TCP timeouts: {tcp_timeouts}")
                results["cutoffs"].append(
                    cutoff.run(
                        cluster, max(counts), args.processes, args.cut_tasks, args.cut_ms,
                        args.cut_seconds, tcp_timeouts,
                    )
                )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"hosts-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    lines = [f"results: {path}", ""]
    for notify in (True, False):
        drains = [d for d in results["drains"] if d["done_notify"] is notify]
        if drains:
            lines += [report.drain_title(notify), "", *report.drain_table(drains), ""]
    for capped_run in results.get("caps", []):
        lines += report.caps_lines(capped_run)
    for cut in results["cutoffs"]:
        lines += report.cutoff_lines(cut)
    print("\n".join(lines))
    ok = all(c["ok"] for c in [*results.get("caps", []), *results["cutoffs"]])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
