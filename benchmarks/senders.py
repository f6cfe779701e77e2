"""Single sends from each kind of sender, in the same run: Python `task.send()`, Rust
(`clients/rust`, release build), `horsies_send()` from psql and from a psycopg client, and a
plain prepared INSERT of the same row (the raw-SQL ceiling).

Each send is its own transaction, as from a request handler. Senders take turns in chunks, so
a slow moment of the machine falls on all of them; the figure is the median over rounds.

    ./dev bench-senders [--n 2000] [--rounds 3] [--chunk 500]
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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.horsies_queue import HorsiesQueue  # noqa: E402

CRATE = REPO_ROOT / "clients/rust"
RUST_SENDER = CRATE / "target/release/examples/bench_send"
RAW_INSERT = """
INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,
    enqueued_at, good_until, timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen)
VALUES (gen_random_uuid(), 'bench.noop', 'default', 50, 'PENDING', %s::jsonb,
    statement_timestamp(), statement_timestamp(), NULL, NULL, 0, 0, '{}'::jsonb, %s, 0)
"""


def timed(n: int, send: Callable[[int], None]) -> float:
    """Sends per second of `n` calls of `send`."""
    start = time.perf_counter()
    for i in range(n):
        send(i)
    return n / (time.perf_counter() - start)


def python_sender(q: HorsiesQueue) -> Callable[[int], float]:
    return lambda n: timed(n, q.send_one)


def psycopg_sender(url: str) -> Callable[[int], float]:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def send(i: int) -> None:
        conn.execute(
            "SELECT horsies_send('bench.noop', %s::jsonb)", (f'{{"i":{i}}}',), prepare=True
        )

    return lambda n: timed(n, send)


def raw_sender(url: str) -> Callable[[int], float]:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def send(i: int) -> None:
        conn.execute(RAW_INSERT, (f'{{"i":{i}}}', "0" * 64), prepare=True)

    return lambda n: timed(n, send)


def psql_sender(url: str) -> Callable[[int], float]:
    def run(n: int) -> float:
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.writelines(
                f"""SELECT horsies_send('bench.noop', '{{"i": {i}}}');\n""" for i in range(n)
            )
        start = time.perf_counter()
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-o",
                "/dev/null",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                script.name,
                url,
            ],
            check=True,
        )
        elapsed = time.perf_counter() - start
        os.unlink(script.name)
        return n / elapsed

    return run


def rust_sender(url: str) -> Callable[[int], float]:
    subprocess.run(
        [
            str(CRATE / "offline-cargo.sh"),
            "build",
            "--release",
            "--quiet",
            "--example",
            "bench_send",
        ],
        check=True,
    )

    def run(n: int) -> float:
        done = subprocess.run(
            [str(RUST_SENDER), str(n)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "DATABASE_URL": url},
        )
        return float(json.loads(done.stdout)["sends_per_s"])

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_000, help="sends per sender and round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds to take medians of (3)")
    parser.add_argument("--chunk", type=int, default=500, help="sends per turn (500)")
    args = parser.parse_args(argv)
    url = os.environ["DATABASE_URL"]
    q = HorsiesQueue(url)
    q.prepare()  # migrate: the catalogue now has bench.noop
    senders: dict[str, Callable[[int], float]] = {
        "raw prepared INSERT (psycopg)": raw_sender(url),
        "Python task.send()": python_sender(q),
        "Rust noop::send() (release)": rust_sender(url),
        "horsies_send() from psycopg": psycopg_sender(url),
        "horsies_send() from psql": psql_sender(url),
    }
    for send in senders.values():  # warm up: connections, prepared statements, caches
        send(50)
    rates: dict[str, list[float]] = {name: [] for name in senders}
    for _ in range(args.rounds):
        q.clear()
        chunk_rates: dict[str, list[float]] = {name: [] for name in senders}
        for _ in range(max(1, args.n // args.chunk)):
            for name, send in senders.items():
                chunk_rates[name].append(send(args.chunk))
        for name, values in chunk_rates.items():
            rates[name].append(len(values) / sum(1 / v for v in values))  # harmonic mean
    q.clear()
    raw = statistics.median(rates["raw prepared INSERT (psycopg)"])
    python = statistics.median(rates["Python task.send()"])
    print(f"\nsingle sends, median of {args.rounds} rounds of {args.n} per sender\n")
    print("| sender | sends/s | x raw INSERT | x Python send |")
    print("|---|---:|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / raw:.2f} | {median / python:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
