"""What a worker's start-up cannot go below: fresh interpreters doing only the set-up.

    python benchmarks/startup_floor.py [--runs 10]

Prints two Markdown tables. The first: wall time from spawn to exit of a fresh `python -c` that
only starts (`pass`), only imports psycopg (the raw-SQL worker's imports), sets up Django with
an empty project, sets up the benchmark project, and also imports the `horsies_worker` command;
medians and ranges over `--runs` rounds, the cases taking turns. The second: the self time of
`python -X importtime -m django horsies_worker --help` in the benchmark project, summed by
top-level package (medians over 5 runs; importtime's own overhead included). Run it under the
benchmark lock on an otherwise idle machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_SETTINGS = "benchmarks.benchproject.settings"
EMPTY_SETTINGS = """
SECRET_KEY = "floor"
INSTALLED_APPS: list[str] = []
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "floor"}}
"""
SET_UP = "import django, django.core.management, psycopg; django.setup()"
GROUPS = {
    "django": "django",
    "psycopg": "psycopg",
    "psycopg_binary": "psycopg",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "horsies_django": "horsies_django",
}
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def cases(empty_dir: str) -> dict[str, tuple[str, dict[str, str]]]:
    bench = {"DJANGO_SETTINGS_MODULE": BENCH_SETTINGS, "PYTHONPATH": str(REPO_ROOT)}
    empty = {"DJANGO_SETTINGS_MODULE": "floor_settings", "PYTHONPATH": empty_dir}
    return {
        "python -c pass": ("pass", {}),
        "import psycopg (the raw-SQL worker's imports)": ("import psycopg", {}),
        "Django's management + psycopg + django.setup(), empty project": (SET_UP, empty),
        "the same, benchmark project (horsies_django, one task module)": (SET_UP, bench),
        "the same + the horsies_worker command's modules": (
            SET_UP + "; import horsies_django.management.commands.horsies_worker",
            bench,
        ),
    }


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("DATABASE_URL", "postgresql://floor@127.0.0.1:1/floor")  # never connected
    return env


def floor_table(runs: int) -> str:
    with tempfile.TemporaryDirectory() as empty_dir:
        Path(empty_dir, "floor_settings.py").write_text(EMPTY_SETTINGS)
        times: dict[str, list[float]] = {}
        for _ in range(runs):
            for name, (code, env) in cases(empty_dir).items():
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", code], env={**base_env(), **env}, cwd=REPO_ROOT,
                    check=True,
                )  # fmt: skip
                times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    lines = ["| fresh process | ms, median | range |", "|---|---:|---:|"]
    for name, values in times.items():
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |"
        )
    return "\n".join(lines)


def import_table(runs: int = 5) -> str:
    argv = [sys.executable, "-X", "importtime", "-m", "django", "horsies_worker", "--help"]
    env = {**base_env(), "DJANGO_SETTINGS_MODULE": BENCH_SETTINGS, "PYTHONPATH": str(REPO_ROOT)}
    totals: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run(
            argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        by_group: dict[str, float] = {}
        for match in IMPORT_LINE.finditer(out.stderr):
            group = GROUPS.get(match[2].split(".")[0], "the standard library and the rest")
            for key in (group, "all"):
                by_group[key] = by_group.get(key, 0.0) + int(match[1]) / 1000
        for key, ms in by_group.items():
            totals.setdefault(key, []).append(ms)
    lines = ["| package | import self time, ms (median) |", "|---|---:|"]
    for key, values in sorted(totals.items(), key=lambda kv: -statistics.median(kv[1])):
        lines.append(f"| {key} | {statistics.median(values):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="rounds of fresh processes (10)")
    args = parser.parse_args(argv)
    print(floor_table(args.runs))
    print()
    print(import_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
