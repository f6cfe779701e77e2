"""The worker launched the ways users launch it, from a real `startproject` layout.

Each test builds `mysite/manage.py` + `mysite/mysite/settings.py` + an app `shop` with a task in
a temporary folder, outside this repository, and starts `horsies_worker` from another working
directory, with another command, or with a broken project. horsies_django is imported from the
virtualenv, as in a user's project: the suite's own PYTHONPATH is not passed on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from horsies_django.worker.supervisor import EXIT_CHILDREN_FAILED
from tests.conftest import WorkerProcess, database_url, sql_value, wait_until

pytestmark = pytest.mark.usefixtures("clean_tables")

SETTINGS_TAIL = """
import environ

INSTALLED_APPS += ["horsies_django", "shop"]
DATABASES = {"default": environ.Env().db("DATABASE_URL")}
HORSIES = {"POLL_INTERVAL_MS": 1_000, "HEARTBEAT_INTERVAL_MS": 500}
"""

SHOP_TASKS = """
from horsies_django import TaskError, TaskResult, app


@app.task("launch.shop.add")
def add(*, a: int, b: int) -> TaskResult[int, TaskError]:
    return TaskResult(ok=a + b)
"""

SEND = "from shop.tasks import add; print(add.send(a=2, b=3).ok_value.task_id)"

# A manage.py that takes a single-instance lock when imported: the children of a fork server
# started as a fresh interpreter (`--fork-server spawn`) import the main script again, so each
# of them dies before it is ready (a forked fork server has it imported already).
LOCKING_MANAGE_PY_HEAD = """
import fcntl
import pathlib

_LOCK = open(pathlib.Path(__file__).with_name("manage.lock"), "w")
fcntl.flock(_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
"""

# Settings that load only where the command line is manage.py's: a fork server started as a fresh
# interpreter (`python -c`, `--fork-server spawn`) cannot set Django up.
PARENT_ONLY_SETTINGS = """
import sys

if sys.argv[:1] == ["-c"]:
    raise RuntimeError("these settings refuse to load outside manage.py")
"""


@dataclass(frozen=True)
class Project:
    base: Path  # the folder above the project
    root: Path  # mysite/, holding manage.py

    @property
    def manage_py(self) -> Path:
        return self.root / "manage.py"


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH or settings of this test suite."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}}
    return {**env, "DATABASE_URL": database_url(), **extra}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    base = tmp_path / "srv"
    base.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"],
        cwd=base, env=user_env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    root = base / "mysite"
    with (root / "mysite" / "settings.py").open("a") as fh:
        fh.write(SETTINGS_TAIL)
    shop = root / "shop"
    shop.mkdir()
    (shop / "__init__.py").write_text("")
    (shop / "tasks.py").write_text(SHOP_TASKS)
    return Project(base, root)


def start(project: Project, argv: list[str], cwd: Path, env: dict[str, str]) -> WorkerProcess:
    log_path = project.base.parent / f"worker-{len(list(project.base.parent.glob('*.log')))}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
    return WorkerProcess(proc, log_path, argv)


def send_from_shell(project: Project) -> str:
    """Send a task the way a user would try it: `manage.py shell -c ...` in the project."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", SEND],
        cwd=project.root, env=user_env(), check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def launches(project: Project) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """Command line, working directory and environment of each way to start the worker."""
    py, root = sys.executable, str(project.root)
    django_admin = str(Path(sys.executable).with_name("django-admin"))
    args = ["horsies_worker", "--processes", "2"]
    return {
        "manage.py from the folder above": (
            [py, "mysite/manage.py", *args],
            project.base,
            user_env(),
        ),
        "absolute manage.py from /": ([py, f"{root}/manage.py", *args], Path("/"), user_env()),
        "python -m django --pythonpath --settings from /": (
            [py, "-m", "django", *args, "--pythonpath", root, "--settings", "mysite.settings"],
            Path("/"),
            user_env(),
        ),
        "django-admin with DJANGO_SETTINGS_MODULE from /": (
            [django_admin, *args],
            Path("/"),
            user_env(DJANGO_SETTINGS_MODULE="mysite.settings", PYTHONPATH=root),
        ),
    }


LAUNCHES = [
    "manage.py from the folder above",
    "absolute manage.py from /",
    "python -m django --pythonpath --settings from /",
    "django-admin with DJANGO_SETTINGS_MODULE from /",
]


@pytest.mark.parametrize("how", LAUNCHES)
def test_worker_runs_tasks_however_it_is_launched(project: Project, how: str) -> None:
    argv, cwd, env = launches(project)[how]
    worker = start(project, argv, cwd, env)
    try:
        task_id = send_from_shell(project)
        wait_until(
            lambda: (
                worker.proc.poll() is not None
                or sql_value("SELECT status FROM horsies_task WHERE id = %s", task_id)
                == "COMPLETED"
            ),
            what="the task to complete",
        )
        assert worker.proc.poll() is None, worker.log()
        assert sql_value("SELECT result FROM horsies_task WHERE id = %s", task_id) == {"ok": 5}
        assert worker.stop() == 0, worker.log()
    finally:
        worker.kill()
    log = worker.log()
    assert "could not preload" not in log
    assert "before it was ready" not in log
    assert "Traceback" not in log, log


def test_children_that_cannot_set_up_django_stop_the_worker_with_the_error(
    project: Project,
) -> None:
    with (project.root / "mysite" / "settings.py").open("a") as fh:
        fh.write(PARENT_ONLY_SETTINGS)
    worker, code, log = _run_to_exit(project, "absolute manage.py from /", "--fork-server", "spawn")
    assert code == EXIT_CHILDREN_FAILED, log
    assert "cannot set up Django" in log
    assert "RuntimeError: these settings refuse to load outside manage.py" in log
    assert "exited unexpectedly" not in log
    reason = _stop_reason(worker.pid)
    assert "cannot set up Django" in reason
    assert "these settings refuse to load outside manage.py" in reason
    assert "cannot set up Django" in _status_json_reason(project, worker.pid)


def test_children_dying_before_ready_stop_the_worker_instead_of_looping(
    project: Project,
) -> None:
    body = project.manage_py.read_text()
    head, _, rest = body.partition("import os\n")
    project.manage_py.write_text(head + LOCKING_MANAGE_PY_HEAD + "import os\n" + rest)
    worker, code, log = _run_to_exit(
        project, "manage.py from the folder above", "--fork-server", "spawn"
    )
    assert code == EXIT_CHILDREN_FAILED, log
    deaths = re.findall(r"child (\d+) died before it was ready", log)
    assert 3 <= len(deaths) <= 3 + 1, log  # three in a row stop it; the other child may die too
    # Each death is reported once: a child killed while the worker stops was once counted
    # again through its process sentinel (5 deaths of 4 children).
    assert len(set(deaths)) == len(deaths), log
    assert "BlockingIOError" in log  # the children's own error is in the log
    reason = _stop_reason(worker.pid)
    assert "3 children in a row died before they were ready" in reason
    assert "died before they were ready" in _status_json_reason(project, worker.pid)


def _run_to_exit(project: Project, how: str, *extra: str) -> tuple[WorkerProcess, int, str]:
    """Start the worker as `how` says (plus `extra` arguments) and wait for it to stop by itself:
    its exit code, log."""
    argv, cwd, env = launches(project)[how]
    worker = start(project, [*argv, *extra], cwd, env)
    try:
        code = worker.proc.wait(timeout=60)
    finally:
        worker.kill()
    return worker, code, worker.log()


def _stop_reason(pid: int) -> str:
    row = sql_value(
        "SELECT json_build_array(state, stop_reason) FROM horsies_worker WHERE pid = %s", pid
    )
    assert row is not None, "the worker registered no row"
    state, reason = row
    assert state == "STOPPED"
    return str(reason)


def _status_json_reason(project: Project, pid: int) -> str:
    """The stop reason `horsies_status --json` shows for the worker with this pid."""
    shown = subprocess.run(
        [sys.executable, "manage.py", "horsies_status", "--json"],
        cwd=project.root, env=user_env(), check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    (worker,) = [w for w in json.loads(shown.stdout)["workers"] if w["pid"] == pid]
    return str(worker["stop_reason"])
