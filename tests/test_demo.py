"""The newcomer's demo (`example_project/manage.py horsies_demo`), run for real.

Each test creates a fresh database on the server in DATABASE_URL, runs the demo against it
with a real worker, and checks the outcome in the output, in the database, and in the process
table (nothing the demo started may outlive it).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import psutil
import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, database_url, wait_until

MANAGE_PY = ROOT / "example_project" / "manage.py"
WORKER_MARKER = "horsies-demo-worker"
RUN_TIMEOUT_S = 150

# (demo step label, final status, attempts, error code): what the demo's scenario promises.
EXPECTED = [
    ("validate a good order (pydantic in/out)", "COMPLETED", 1, None),
    ("validate an empty order", "FAILED", 1, "EMPTY_ORDER"),
    ("process order 1001", "COMPLETED", 1, None),
    ("charge over the card limit", "FAILED", 1, "PAYMENT_DECLINED"),
    ("generate invoice (raises KeyError)", "FAILED", 1, "UNHANDLED_EXCEPTION"),
    ("notify warehouse (flaky, retried)", "COMPLETED", 3, None),
    ("send receipt in 3 s (scheduled)", "COMPLETED", 1, None),
]
# The checkout workflow the demo starts: (node, task) in index order, all COMPLETED, and the
# output node's result, which the demo prints in full.
WORKFLOW_NODES = [
    ("validate", "validate_order"),
    ("charge", "charge_payment"),
    ("reserve", "reserve_stock"),
    ("ship", "ship_order"),
]
WORKFLOW_OUTPUT = (
    "ok: 'Order A-1001 shipped express (2 item(s) reserved; "
    "payment: Charged 4999 cents for order 1001)'"
)


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A new, empty database on the DATABASE_URL server, dropped afterwards."""
    server = database_url()
    name = f"horsies_demo_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urllib.parse.urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def demo_env(url: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the example project's own settings, not the tests'
    return env


def start_demo(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "horsies_demo", *args],
        cwd=ROOT,
        env=demo_env(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_if_running(demo: subprocess.Popen[str]) -> None:
    """SIGKILL a demo that is still running, and what it started: its worker and server would
    outlive it (holding its output pipe open) and run on after a failed test."""
    if demo.poll() is not None:
        return
    try:
        family = psutil.Process(demo.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    demo.kill()
    demo.wait()
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def worker_pid(output: str) -> int:
    match = re.search(r"worker running \(pid (\d+)", output)
    assert match, f"the demo did not report its worker:\n{output}"
    return int(match.group(1))


def leftovers(demo_pid: int, worker: int) -> list[str]:
    """Processes the demo started that are still alive (children, marked worker, its group)."""
    marker = f"{WORKER_MARKER}-{demo_pid}"
    found = [f"child {p.pid}" for p in psutil.Process().children(recursive=True)]
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            in_group = os.getpgid(proc.pid) == worker
        except (psutil.Error, ProcessLookupError):
            continue
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue  # already dead, waiting for init to reap it
        if marker in cmdline or in_group:
            found.append(f"{proc.pid}: {cmdline}")
    return found


def assert_nothing_left(demo_pid: int, worker: int) -> None:
    """The demo has exited: what it started must be gone (SIGKILL takes a moment to land)."""
    found: list[str] = []

    def gone() -> bool:
        found[:] = leftovers(demo_pid, worker)
        return not found

    try:
        wait_until(gone, timeout_s=10, what="the demo's processes to be gone")
    except pytest.fail.Exception:
        pytest.fail(f"processes left behind by the demo: {found}")


def assert_final_statuses(output: str) -> None:
    final = output.split("Final results:", 1)
    assert len(final) == 2, f"no final results in the output:\n{output}"
    for label, status, attempts, code in EXPECTED:
        pattern = rf"{re.escape(label)}\s+{status}\s+attempts={attempts}\b.*"
        line = re.search(pattern, final[1])
        assert line, f"{label!r} did not end {status} after {attempts} attempt(s):\n{output}"
        if code:
            assert code in line.group(0), line.group(0)


def assert_workflow_reported(output: str) -> str:
    """The demo started the checkout workflow and reported it COMPLETED with its output;
    returns the workflow id it printed."""
    started = re.search(r"workflow checkout started \(id ([0-9a-f-]{36})\)", output)
    assert started, f"the demo did not report starting its workflow:\n{output}"
    final = output.split("Final results:", 1)[-1]
    summary = final.split("Workflow checkout: ", 1)
    assert len(summary) == 2, f"no workflow results in the output:\n{output}"
    # The summary, a line per node, then the output.
    lines = summary[1].splitlines()[: len(WORKFLOW_NODES) + 2]
    assert len(lines) == len(WORKFLOW_NODES) + 2, output
    assert lines[0] == "COMPLETED, 4/4 nodes done", output
    for (node_id, task_name), line in zip(WORKFLOW_NODES, lines[1:-1], strict=True):
        assert re.match(rf"\s+{node_id} \({task_name}\)\s+COMPLETED ok: ", line), output
    assert lines[-1] == f"  output: {WORKFLOW_OUTPUT}", output
    return started.group(1)


def db_rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(query).fetchall())


def test_demo_runs_to_completion_from_a_clean_database(fresh_database_url: str) -> None:
    demo = start_demo(fresh_database_url, "--no-serve")
    try:
        output, _ = demo.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        kill_if_running(demo)

    assert demo.returncode == 0, output
    assert_final_statuses(output)
    assert "All 7 tasks and the checkout workflow ended as expected." in output
    workflow_id = assert_workflow_reported(output)
    assert "#1 FAILED TEMPORARY_OUTAGE (retried), #2 FAILED TEMPORARY_OUTAGE (retried)" in output
    assert_nothing_left(demo.pid, worker_pid(output))
    # The database agrees with what was printed, and the worker shut down gracefully.
    statuses = db_rows(
        fresh_database_url,
        "SELECT t.task_name, t.status, count(a.*) FROM horsies_task t "
        "LEFT JOIN horsies_task_attempt a ON a.task_id = t.id GROUP BY t.id ORDER BY 1, 2",
    )
    assert sorted(statuses) == sorted(
        [
            ("charge_payment", "FAILED", 1),
            ("generate_invoice", "FAILED", 1),
            ("notify_warehouse", "COMPLETED", 3),
            ("process_order", "COMPLETED", 1),
            ("send_receipt", "COMPLETED", 1),
            ("validate_order", "COMPLETED", 1),
            ("validate_order", "FAILED", 1),
            # The checkout workflow's nodes.
            ("validate_order", "COMPLETED", 1),
            ("charge_payment", "COMPLETED", 1),
            ("reserve_stock", "COMPLETED", 1),
            ("ship_order", "COMPLETED", 1),
        ]
    )
    assert db_rows(
        fresh_database_url,
        "SELECT id::text, name, status, nodes_done, node_count FROM horsies_workflow",
    ) == [(workflow_id, "checkout", "COMPLETED", 4, 4)]
    assert db_rows(fresh_database_url, "SELECT state FROM horsies_worker") == [("STOPPED",)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def collect_output(proc: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """Read the process's output in the background; the list grows as lines arrive."""
    lines: list[str] = []
    assert proc.stdout is not None
    stream = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    return lines, reader


def admin_login(base: str, username: str, password: str) -> str:
    """Log in to the admin with a real HTTP session; return the page landed on."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login_url = f"{base}/admin/login/?next=/admin/"
    with opener.open(login_url, timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page
    form = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
    request = urllib.request.Request(
        login_url, data=urllib.parse.urlencode(form).encode(), headers={"Referer": login_url}
    )
    with opener.open(request, timeout=10) as response:
        return str(response.geturl())


def test_demo_serves_the_admin_and_ctrl_c_stops_everything(fresh_database_url: str) -> None:
    port = free_port()
    demo = start_demo(fresh_database_url, "--port", str(port))
    lines, reader = collect_output(demo)
    try:
        admin_line = wait_until(
            lambda: (
                next((line for line in lines if line.startswith("Admin: ")), None)
                or demo.poll() is not None
            ),
            timeout_s=RUN_TIMEOUT_S,
            what="the demo to serve the admin",
        )
        assert demo.poll() is None, "".join(lines)
        match = re.search(r"(http://\S+)/admin/\s+username: (\S+)\s+password: (\S+)", admin_line)
        assert match, admin_line
        base, username, password = match.groups()
        assert admin_login(base, username, password) == f"{base}/admin/"

        demo.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        assert demo.wait(timeout=60) == 0, "".join(lines)
    finally:
        kill_if_running(demo)
        reader.join(timeout=10)
        assert demo.stdout is not None
        demo.stdout.close()
    output = "".join(lines)
    assert_nothing_left(demo.pid, worker_pid(output))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
