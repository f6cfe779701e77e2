"""docs/tutorial.md followed word for word by a new user, in a fresh folder outside this repository.

The test reads the tutorial's fenced blocks in order and does what each one says, nothing more;
a step that needs something the tutorial does not say fails. What a block is comes from a marker
comment just above its fence (blank lines and other comments, e.g. `docs-test:`, may sit between):

- `<!-- tutorial: terminal N -->` (a ```bash block): typed line by line into terminal N. Each
  terminal starts in the folder the tutorial starts in, with the user's environment: an active
  virtualenv holding horsies_django (no PYTHONPATH, no DATABASE_URL, no PG* variables of this
  suite). `cd DIR` and `export NAME=VALUE` change that terminal only; the value of an
  `export DATABASE_URL=` is replaced by the user's own server (a fresh database on the suite's).
  `pip install` is checked, not run: horsies_django must import in the terminal. Commands that
  keep running (`horsies_worker`: until its `started:` line; `runserver`: until it answers on
  a free port standing for 8000) stay in the background. `createsuperuser`'s prompts are
  answered (username `admin`), as `--noinput` with `DJANGO_SUPERUSER_*`.
- `<!-- tutorial: PATH -->`: the block is the content of PATH, relative to terminal 1's folder;
  `<!-- tutorial: append PATH -->` adds it at the end of that existing file.
- `<!-- tutorial: manage.py shell -->` (python): typed into `python manage.py shell` in terminal 1.
  Consecutive such blocks are one session (run with `shell -c`); a `print(...)  # TEXT` line
  must print the line TEXT.
- `<!-- tutorial: skip REASON -->`: not a step (an alternative, an example of output).

The ```python blocks run in tests/test_docs.py too, in one namespace with the task module
imported under its own name: a block only the real project can run (`from shop.tasks import
...`) also carries `<!-- docs-test: skip REASON -->`, the line right above its fence.

Then, like the tutorial's last step, the test logs into the admin at the tutorial's
`http://127.0.0.1:8000/...` addresses (the stylesheets served, the tasks listed), stops the
worker with Ctrl-C, and starts it again from the folder above the project
(`python mysite/manage.py horsies_worker`) to run one more task.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, WorkerProcess, database_url, wait_until

TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*tutorial:\s*(?P<what>.*?)\s*-->$")
COMMENT = re.compile(r"^<!--.*-->$")
PRINT_EXPECTING = re.compile(r"^\s*print\(.*\)\s+#\s(?P<expected>.+?)\s*$")
TUTORIAL_URL = re.compile(r"http://127\.0\.0\.1:8000(?P<path>/[^\s<>)`]*)")
STYLESHEET = re.compile(r'<link[^>]*rel="stylesheet"[^>]*href="(?P<href>[^"]+)"')
ADMIN_PASSWORD = "tutorial-" + secrets.token_hex(8)
COMMAND_TIMEOUT_S = 120.0  # an upper bound for one short command, not an expected duration


@dataclass(frozen=True)
class Step:
    """One marked block of the tutorial."""

    line: int  # of the opening fence, 1-based
    what: str  # the marker's text: "terminal 1", "shop/tasks.py", "manage.py shell"...
    code: str


def tutorial_steps(text: str) -> list[Step]:
    """Every fenced block with its marker; a block without one fails (it would go untested)."""
    lines = text.splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            i += 1
            continue
        fence = FENCE.match(lines[i])
        assert fence is not None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == fence[1])
        what = _marker_above(lines, i)
        assert what is not None, f"tutorial.md:{i + 1}: block without a <!-- tutorial: ... -->"
        steps.append(Step(i + 1, what, "\n".join(lines[i + 1 : end]) + "\n"))
        i = end + 1
    return steps


def _marker_above(lines: list[str], index: int) -> str | None:
    j = index - 1
    while j >= 0 and (not lines[j].strip() or COMMENT.match(lines[j].strip())):
        match = MARKER.match(lines[j].strip())
        if match:
            return match["what"]
        j -= 1
    return None


def venv_user_env() -> dict[str, str]:
    """A new terminal of a user whose virtualenv (this interpreter's) is active."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL"}
        and not k.startswith(("PG", "HORSIES_"))
    }
    bindir = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(bindir.parent)
    return env


@dataclass
class Terminal:
    name: str
    cwd: Path
    env: dict[str, str]


@dataclass
class Background:
    what: str
    process: WorkerProcess


@dataclass
class User:
    """What a user following the tutorial has: terminals, files, running commands."""

    home: Path  # the folder the tutorial starts in
    database_url: str  # the user's own server
    port: int  # where runserver listens instead of 8000
    terminals: dict[str, Terminal] = field(default_factory=dict)
    running: list[Background] = field(default_factory=list)
    shell_session: list[Step] = field(default_factory=list)
    shell_output: str = ""

    def terminal(self, name: str) -> Terminal:
        if name not in self.terminals:
            self.terminals[name] = Terminal(name, self.home, venv_user_env())
        return self.terminals[name]

    # ------------------------------------------------------------------ steps

    def follow(self, step: Step) -> None:
        if step.what == "manage.py shell":
            self.shell_session.append(step)
            return
        self.finish_shell_session()
        kind, _, arg = step.what.partition(" ")
        if kind == "skip":
            assert arg, f"tutorial.md:{step.line}: say why the block is not a step"
        elif kind == "terminal":
            for line in step.code.splitlines():
                self.type_line(self.terminal(arg), line, step)
        elif kind == "append":
            path = self.terminal("1").cwd / arg
            assert path.is_file(), f"tutorial.md:{step.line}: {arg} does not exist yet"
            with path.open("a") as fh:
                fh.write("\n" + step.code)
        else:
            path = self.terminal("1").cwd / step.what
            assert path.parent.is_dir(), f"tutorial.md:{step.line}: no folder for {step.what}"
            path.write_text(step.code)

    def type_line(self, terminal: Terminal, line: str, step: Step) -> None:
        argv = shlex.split(line, comments=True)
        where = f"tutorial.md:{step.line}: terminal {terminal.name}: {line.strip()}"
        if not argv:
            return
        if argv[0] == "cd":
            terminal.cwd = (terminal.cwd / argv[1]).resolve()
            assert terminal.cwd.is_dir(), f"{where}: no such folder"
        elif argv[0] == "export":
            name, _, value = argv[1].partition("=")
            terminal.env[name] = self.database_url if name == "DATABASE_URL" else value
        elif argv[:2] == ["pip", "install"]:
            self.run(terminal, ["python", "-c", "import horsies_django"], where)
        elif "horsies_worker" in argv:
            self.start_worker(terminal, argv, where)
        elif "runserver" in argv:
            self.start_runserver(terminal, argv, where)
        elif "createsuperuser" in argv:
            answers = {
                "DJANGO_SUPERUSER_USERNAME": "admin",
                "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
                "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
            }
            self.run(terminal, [*argv, "--noinput"], where, extra_env=answers)
        else:
            self.run(terminal, argv, where)

    def run(
        self,
        terminal: Terminal,
        argv: list[str],
        where: str,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        done = subprocess.run(
            argv, cwd=terminal.cwd, env={**terminal.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"{where}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, terminal: Terminal, argv: list[str], what: str) -> WorkerProcess:
        log_path = self.home.parent / f"{what}-{len(self.running)}.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                argv, cwd=terminal.cwd, env=terminal.env, stdout=log, stderr=subprocess.STDOUT,
                text=True, start_new_session=True,
            )  # fmt: skip
        process = WorkerProcess(proc, log_path, argv)
        self.running.append(Background(what, process))
        return process

    def start_worker(self, terminal: Terminal, argv: list[str], where: str) -> WorkerProcess:
        worker = self.start(terminal, argv, "worker")
        wait_until(
            lambda: worker.proc.poll() is not None or "started:" in worker.log(),
            what=f"{where} to start",
        )
        if worker.proc.poll() is not None:
            pytest.fail(f"{where}: exited with {worker.proc.returncode}\n{worker.log()}")
        return worker

    def start_runserver(self, terminal: Terminal, argv: list[str], where: str) -> None:
        server = self.start(terminal, [*argv, f"127.0.0.1:{self.port}"], "runserver")
        wait_until(
            lambda: server.proc.poll() is not None or self.answers(),
            what=f"{where} to answer",
        )
        if server.proc.poll() is not None:
            pytest.fail(f"{where}: exited with {server.proc.returncode}\n{server.log()}")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (404 for /) means it serves
        except OSError:
            return False

    def finish_shell_session(self) -> None:
        """Run the shell blocks typed so far as one `manage.py shell` session in terminal 1."""
        if not self.shell_session:
            return
        steps, self.shell_session = self.shell_session, []
        code = "".join(step.code for step in steps)
        where = f"tutorial.md:{steps[0].line}-{steps[-1].line}: python manage.py shell"
        output = self.run(self.terminal("1"), ["python", "manage.py", "shell", "-c", code], where)
        self.shell_output += output
        printed = output.splitlines()
        for line in code.splitlines():
            expected = PRINT_EXPECTING.match(line)
            if expected:
                assert expected["expected"] in printed, f"{where}: {line.strip()}\n{output}"

    @property
    def project(self) -> Path:
        """The folder of manage.py, where terminal 1 ran the tutorial's shell."""
        folder = self.terminal("1").cwd
        assert (folder / "manage.py").is_file(), f"terminal 1 is not in a project: {folder}"
        return folder

    def stop_everything(self) -> None:
        """Stop what the tutorial left running, then kill whatever is left of each group."""
        for background in reversed(self.running):
            background.process.stop(timeout_s=30)
            with contextlib.suppress(ProcessLookupError):  # runserver's reloader child, say
                os.killpg(background.process.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the admin


class Browser:
    """Cookies and CSRF like a browser's, against runserver."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str, str]:
        """Status, final address (after redirects) and body."""
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode()
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST"))

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=COMMAND_TIMEOUT_S) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode(errors="replace")

    def log_in(self, path: str, username: str, password: str) -> str:
        """Log in through the admin's login form on the way to `path`; return its page."""
        status, _, form = self.get(f"/admin/login/?next={urllib.parse.quote(path)}")
        assert status == 200, form
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token is not None, form
        status, url, page = self.post(
            "/admin/login/",
            {
                "csrfmiddlewaretoken": token[1],
                "username": username,
                "password": password,
                "next": path,
            },
        )
        assert status == 200, page
        assert urllib.parse.urlsplit(url).path == path, f"still at {url}: login failed"
        return page


def check_admin(user: User, text: str) -> None:
    """The tutorial's admin addresses, logged in as its superuser: styled and listing the tasks."""
    paths = [m["path"] for m in TUTORIAL_URL.finditer(text)]
    assert any(p.startswith("/admin/horsies_django/task/") for p in paths), paths
    browser = Browser(user.port)
    for path in paths:
        page = browser.log_in(path, "admin", ADMIN_PASSWORD)
        sheets = [m["href"] for m in STYLESHEET.finditer(page)]
        assert "/static/admin/css/base.css" in sheets, sheets
        for href in sheets:
            status, _, body = browser.get(href)
            assert status == 200, f"{path} links {href}: {status} (the admin has no styles)"
            assert body.strip(), href
        if path.startswith("/admin/horsies_django/task/"):
            tasks = tutorial_tasks(user.database_url)
            assert tasks, "the tutorial sent no task"
            for task_id, task_name, task_status in tasks:
                assert task_id in page, f"task {task_id} ({task_name}) not listed"
                assert task_name in page
                assert task_status in page, f"task {task_id} not shown as {task_status}"


def tutorial_tasks(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT id::text, task_name, status FROM horsies_task").fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


# --------------------------------------------------------------------------- fixtures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def users_database() -> Iterator[str]:
    """A fresh, empty database on the suite's server: the user's own, dropped afterwards."""
    name = f"tutorial_{secrets.token_hex(6)}"
    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(query.format(sql.Identifier(name)))


@pytest.fixture
def user(tmp_path: Path, users_database: str) -> Iterator[User]:
    home = tmp_path / "home"
    home.mkdir()
    user = User(home, users_database, free_port())
    try:
        yield user
    finally:
        user.stop_everything()


# --------------------------------------------------------------------------- the test


def test_the_tutorial_word_for_word(user: User) -> None:
    text = TUTORIAL.read_text()
    steps = tutorial_steps(text)
    assert any(s.what.startswith("terminal ") for s in steps)
    assert any(s.what == "manage.py shell" for s in steps)
    for step in steps:
        user.follow(step)
    user.finish_shell_session()

    assert "order 42: 2 item(s) packed" in user.shell_output
    check_admin(user, text)
    workers = [b.process for b in user.running if b.what == "worker"]
    assert workers, "the tutorial started no worker"
    for worker in workers:  # "Stop it with Ctrl-C: it finishes what it is running, then exits"
        worker.signal(signal.SIGINT)
        assert worker.proc.wait(timeout=COMMAND_TIMEOUT_S) == 0, worker.log()
    run_a_task_with_a_worker_started_from_the_folder_above(user)


def run_a_task_with_a_worker_started_from_the_folder_above(user: User) -> None:
    project = user.project
    terminal = user.terminal("2")  # the worker's terminal, set up as the tutorial says
    terminal.cwd = project.parent
    argv = ["python", f"{project.name}/manage.py", "horsies_worker", "--processes", "2"]
    user.start_worker(terminal, argv, f"{shlex.join(argv)} from the folder above the project")
    code = (
        "from shop.tasks import process_order\n"
        "handle = process_order.send(order_id=7, items=['rope']).ok_value\n"
        "result = handle.get(timeout_ms=60_000)\n"
        "print(result.ok_value if result.is_ok() else result)\n"
    )
    where = "manage.py shell in terminal 1"
    output = user.run(user.terminal("1"), ["python", "manage.py", "shell", "-c", code], where)
    assert "order 7: 1 item(s) packed" in output, output
