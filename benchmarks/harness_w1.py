"""The shared harness's W1 (bulk, then single sends) alone, for adapters side by side, many rounds.

    python benchmarks/harness_w1.py --rounds 12 ADAPTER_DIR ...   # root; the harness's venvs

The full harness (/work/shared/bench/run.sh) spends a minute per adapter and repeat on the drain
and the latency workloads; a send's ratio then rests on three repeats of about two seconds each.
This runs only W1, through the harness's own `benchlib` (`Runner.w1`) and the adapters' own
`bench.py`, on a cluster set up by the harness's `lib/pg.sh` (same settings, on port 55499 and
/tmp/harness-w1-pg, so it can run beside nothing else but never collides with the harness's own
server), a fresh database per adapter per round, the order rotated each round. raw_sql is always
included; it prints, per metric, each adapter's ratio to raw_sql per round and the median, and
the ratio of the last adapter to the one before it per round (a before/after pair).

Each adapter runs from the harness's venv `/tmp/bench-venvs/<folder name>`: run the harness once
with the same folders (or their `setup.sh`) first. An adapter is `raw_sql` or a folder path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

BENCH = Path(os.environ.get("BENCH", "/work/shared/bench"))
PGBIN = Path("/usr/lib/postgresql/15/bin")
PORT = "55499"
METRICS = ("w1_send_per_s", "w1_bulk_per_s")

# Run in the adapter's venv: import its bench.py, find its Adapter, run W1, print the JSON.
CHILD = """
import importlib.util, inspect, json, os, sys
folder = sys.argv[1]
sys.path[:0] = [os.environ["BENCH_LIB"], folder]
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import benchlib
spec = importlib.util.spec_from_file_location("adapter_bench", os.path.join(folder, "bench.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
adapter = next(c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, benchlib.Adapter) and c.__module__ == module.__name__)()
params = benchlib.Params.from_env()
adapter.p = params
adapter.prepare()
result = benchlib.Runner(adapter, params).w1()
adapter.close()
out.write(json.dumps(result) + "\\n")
"""


def _pg(*args: str, env: dict[str, str]) -> None:
    subprocess.run(["bash", str(BENCH / "lib/pg.sh"), *args], env=env, check=True)


def _sql(db: str, command: str, env: dict[str, str]) -> None:
    base = [str(PGBIN / "psql"), "-h", "127.0.0.1", "-p", PORT, "-U", "bench", "-XAtq"]
    subprocess.run([*base, "-d", db, "-c", command], env=env, check=True)


def _w1(name: str, folder: Path, db: str, env: dict[str, str]) -> dict[str, Any]:
    python = f"/tmp/bench-venvs/{name}/bin/python"
    run_env = {**env, "DATABASE_URL": f"postgresql://bench@127.0.0.1:{PORT}/{db}"}
    done = subprocess.run(
        [python, "-c", CHILD, str(folder)],
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapters", nargs="+", help="raw_sql or adapter folders")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--n", default="5000", help="sends per W1 (the harness's N)")
    args = parser.parse_args()
    folders = {"raw_sql": BENCH / "adapters/raw_sql"}
    for a in args.adapters:
        if a != "raw_sql":
            folders[Path(a).name] = Path(a).resolve()
    names = list(folders)
    env = {
        **os.environ,
        "BENCH_PGDATA": "/tmp/harness-w1-pg",
        "BENCH_PGPORT": PORT,
        "BENCH_PGLOG": "/tmp/harness-w1-pg.log",
        "BENCH_LIB": str(BENCH / "lib"),
        "BENCH_LOG_DIR": "/tmp/harness-w1-logs",
        "N": args.n,
        "BULK_CHUNK": "100",
    }
    Path(env["BENCH_LOG_DIR"]).mkdir(exist_ok=True)
    rounds: list[dict[str, dict[str, Any]]] = []
    _pg("init", env=env)
    _pg("start", env=env)
    try:
        for r in range(args.rounds):
            found: dict[str, dict[str, Any]] = {}
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                db = f"w1_{name}_{r}"
                _sql("postgres", f'CREATE DATABASE "{db}"', env)
                _sql("postgres", "CHECKPOINT", env)
                found[name] = _w1(name, folders[name], db, env)
                _sql("postgres", f'DROP DATABASE "{db}" WITH (FORCE)', env)
            print(json.dumps({"round": r + 1, **found}), flush=True)
            rounds.append(found)
    finally:
        _pg("stop", env=env)
    for metric in METRICS:
        for name in names[1:]:
            ratios = [f[name][metric] / f["raw_sql"][metric] for f in rounds]
            print(f"{metric} {name} / raw_sql: median {statistics.median(ratios):.3f} "
                  f"rounds {[round(x, 2) for x in ratios]}")  # fmt: skip
        if len(names) > 2:
            before, after = names[-2], names[-1]
            ratios = [f[after][metric] / f[before][metric] for f in rounds]
            print(f"{metric} {after} / {before}: median {statistics.median(ratios):.3f} "
                  f"rounds {[round(x, 2) for x in ratios]}")  # fmt: skip


if __name__ == "__main__":
    main()
