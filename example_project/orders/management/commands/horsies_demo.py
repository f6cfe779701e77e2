"""`manage.py horsies_demo`: the whole product in one run, from a clean database to the admin.

Migrates, creates an admin user, starts a worker, sends a mix of tasks (success, domain error,
exception, retry-then-success, delayed, pydantic argument) and starts a checkout workflow (a DAG
of tasks advanced by the database), shows them live until they finish, then serves the admin.
Whatever happens, the worker and the server are stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.live import Live

from horsies_django.management.argtypes import positive_seconds
from horsies_django.models import Worker, WorkerState
from orders.demo import display
from orders.demo.processes import ManagedProcess, manage_py, port_in_use, wait_for_port
from orders.demo.scenario import DemoTask, DemoWorkflow, SendError, send_all, start_checkout

HOST = "127.0.0.1"
ADMIN_USERNAME = "admin"
WORKER_MARKER = "horsies-demo-worker"
WORKER_PROCESSES = 2
WORKER_START_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
REFRESH_S = 0.25
EXIT_UNEXPECTED = 1
EXIT_SETUP_FAILED = 2
EXIT_INTERRUPTED = 130


def port_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65_535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


class Command(BaseCommand):
    help = "Run the horsies demo: a worker, tasks and a workflow shown live, then the admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="exit after the tasks finished instead of serving the admin",
        )
        parser.add_argument(
            "--port", type=port_number, default=8000, help="admin server port (default 8000)"
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            default=60.0,
            metavar="SECONDS",
            help="how long the tasks and the workflow may take to finish (default 60)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
        self.processes: list[ManagedProcess] = []
        self.serving = False
        succeeded = False
        serve = not options["no_serve"]
        if serve and port_in_use(HOST, options["port"]):
            raise CommandError(
                f"port {options['port']} on {HOST} is in use: pass --port N, or --no-serve",
                returncode=EXIT_SETUP_FAILED,
            )
        self.total_steps = 7 if serve else 6
        with _sigterm_as_interrupt():
            try:
                self._run(serve=serve, port=options["port"], timeout_s=options["timeout"])
                succeeded = True
            except KeyboardInterrupt:
                if not self.serving:
                    self.console.print("\nInterrupted: stopping the worker.")
                    raise SystemExit(EXIT_INTERRUPTED) from None
                # Ctrl-C is how a successful demo ends once the admin is served.
                self.console.print("\nStopping the server and the worker.")
                succeeded = True
            finally:
                self._stop_all(keep_logs=not succeeded)

    # ------------------------------------------------------------------ the steps

    def _run(self, *, serve: bool, port: int, timeout_s: float) -> None:
        self._step(1, "migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        self._step(2, "creating the admin user")
        password = self._reset_admin()
        if not serve:
            self.console.print(f"  username: {ADMIN_USERNAME}   password: {password}")
        self._step(3, f"starting a worker with {WORKER_PROCESSES} processes")
        worker = self._start_worker()
        self._step(4, "sending tasks and starting the checkout workflow")
        try:
            tasks = send_all(run_key=uuid.uuid4().hex)
            workflow = start_checkout()
        except SendError as exc:
            raise CommandError(str(exc), returncode=EXIT_SETUP_FAILED) from exc
        self.console.print(
            f"  workflow {workflow.name} started (id {workflow.handle.workflow_id}): "
            f"{' -> '.join(display.stages(workflow))}",
            markup=False,
        )
        self._step(
            5,
            f"waiting for {len(tasks)} tasks and the {workflow.name} workflow "
            f"(at most {timeout_s:g} s)",
        )
        finished = self._watch(tasks, workflow, worker, timeout_s)
        self._step(6, "results")
        problems = self._report(tasks, workflow)
        if not finished or problems:
            self._show_worker_log(worker)
            reason = (
                f"did not finish within {timeout_s:g} s" if not finished else "ended unexpectedly"
            )
            raise CommandError(
                f"{len(problems)} of {len(tasks) + 1} ({len(tasks)} tasks, 1 workflow) "
                f"{reason} (see UNEXPECTED above)",
                returncode=EXIT_UNEXPECTED,
            )
        self.console.print(
            f"All {len(tasks)} tasks and the {workflow.name} workflow ended as expected.",
            style="bold green",
        )
        if serve:
            self._serve(port, password, worker)

    def _step(self, number: int, text: str) -> None:
        self.console.print(f"[bold]\\[{number}/{self.total_steps}][/bold] {text}")

    def _reset_admin(self) -> str:
        """Create the `admin` superuser, or reset its password; return the new password."""
        password = secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        verb = "created" if created else "exists: password reset"
        self.console.print(f"  superuser {ADMIN_USERNAME!r} {verb} (one-time password)")
        return password

    def _start_worker(self) -> ManagedProcess:
        fd, log_name = tempfile.mkstemp(prefix=f"{WORKER_MARKER}-", suffix=".log")
        os.close(fd)
        cmd = manage_py(
            "horsies_worker",
            "--processes",
            str(WORKER_PROCESSES),
            "--worker-name",
            f"{WORKER_MARKER}-{os.getpid()}",
            "--shutdown-timeout",
            "5",
        )
        worker = ManagedProcess.start("worker", cmd, log_path=Path(log_name))
        self.processes.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while not self._worker_registered(worker):
            if not worker.running() or time.monotonic() > deadline:
                self._show_worker_log(worker)
                raise CommandError(
                    f"the worker did not start (exit code {worker.proc.poll()}); its log is above",
                    returncode=EXIT_SETUP_FAILED,
                )
            time.sleep(0.1)  # polling interval of a bounded wait
        self.console.print(f"  worker running (pid {worker.pid}, log {worker.log_path})")
        return worker

    @staticmethod
    def _worker_registered(worker: ManagedProcess) -> bool:
        return Worker.objects.filter(pid=worker.pid, state=WorkerState.RUNNING).exists()

    def _watch(
        self,
        tasks: list[DemoTask],
        workflow: DemoWorkflow,
        worker: ManagedProcess,
        timeout_s: float,
    ) -> bool:
        """Refresh every task and the workflow until all are terminal (True) or time runs out
        (False)."""
        started = time.monotonic()
        deadline = started + timeout_s
        live = self.console.is_terminal
        with (
            Live(display.screen(tasks, workflow), console=self.console, auto_refresh=False)
            if live
            else contextlib.nullcontext()
        ) as screen:
            while True:
                for task in tasks:
                    if not task.finished and task.refresh() and not live:
                        self.console.print(display.plain_line(task, time.monotonic() - started))
                if not workflow.finished:
                    self._refresh_workflow(workflow, started, live=live)
                if screen is not None:
                    screen.update(display.screen(tasks, workflow), refresh=True)
                if all(task.finished for task in tasks) and workflow.finished:
                    return True
                if time.monotonic() > deadline or not worker.running():
                    if not worker.running():
                        self.console.print(f"The worker exited with {worker.proc.returncode}.")
                    return False
                time.sleep(REFRESH_S)  # refresh interval of the progress display

    def _refresh_workflow(self, workflow: DemoWorkflow, started: float, *, live: bool) -> None:
        """Re-read the workflow; without the live display, print what changed."""
        progressed, nodes = workflow.refresh()
        if live:
            return
        elapsed = time.monotonic() - started
        for node in nodes:
            self.console.print(display.plain_node_line(workflow, node, elapsed), markup=False)
        if progressed:
            self.console.print(display.plain_workflow_line(workflow, elapsed), markup=False)

    def _report(self, tasks: list[DemoTask], workflow: DemoWorkflow) -> list[str]:
        """Print each task's final state and attempts, the workflow's nodes and output; return
        the unexpected ones."""
        if not self.console.is_terminal:
            self.console.print("Final results:")
            for task in tasks:
                self.console.print(display.final_line(task))
        self.console.print(display.workflow_summary(workflow), markup=False)
        if not self.console.is_terminal:
            for node in workflow.nodes:
                self.console.print(display.final_node_line(workflow, node), markup=False)
        self.console.print(display.workflow_output(workflow), markup=False)
        retried = [task for task in tasks if task.attempts > 1]
        if retried:
            self.console.print("Attempt history of retried tasks:")
        for task in retried:
            self.console.print(f"  {task.label}: {display.attempt_history(task)}")
        problems = [f"{task.label}: {task.problem()}" for task in tasks if task.problem()]
        if workflow.problem():
            problems.append(f"workflow {workflow.name}: {workflow.problem()}")
        for problem in problems:
            self.console.print(f"  UNEXPECTED {problem}", style="bold red", markup=False)
        return problems

    def _serve(self, port: int, password: str, worker: ManagedProcess) -> None:
        """Serve the admin until Ctrl-C (the worker keeps running, so the admin is live)."""
        args = ["runserver", f"{HOST}:{port}", "--noreload"]
        if not settings.DEBUG:
            args.append("--insecure")  # serve the admin's static files anyway
        self._step(7, f"serving the admin on http://{HOST}:{port}/admin/")
        server = ManagedProcess.start("server", manage_py(*args))
        self.processes.append(server)
        if not wait_for_port(server, HOST, port, timeout_s=30):
            raise CommandError(
                f"the admin server did not start on {HOST}:{port} (see above); try --port N",
                returncode=EXIT_SETUP_FAILED,
            )
        self.console.print(
            f"\nAdmin: http://{HOST}:{port}/admin/   username: {ADMIN_USERNAME}   "
            f"password: {password}\nPress Ctrl-C to stop the server and the worker.",
            style="bold",
        )
        self.serving = True
        while server.running() and worker.running():
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=1)
        self.serving = False
        if not worker.running():
            self._show_worker_log(worker)
            raise CommandError(
                f"the worker exited with {worker.proc.returncode}", returncode=EXIT_UNEXPECTED
            )
        raise CommandError(
            f"the admin server exited with {server.proc.returncode}", returncode=EXIT_UNEXPECTED
        )

    # ------------------------------------------------------------------ cleanup

    def _show_worker_log(self, worker: ManagedProcess) -> None:
        self.console.print(f"--- worker log ({worker.log_path}) ---", style="bold")
        self.console.print(worker.log_tail(), markup=False)
        self.console.print("--- end of worker log ---", style="bold")

    def _stop_all(self, *, keep_logs: bool) -> None:
        """Stop the server, then the worker; each within a bound, leaving no process behind."""
        for process in reversed(self.processes):
            try:
                code = process.stop(STOP_GRACE_S)
            except KeyboardInterrupt:
                self.console.print("Interrupted again: killing the worker and the server now.")
                for other in self.processes:
                    other.kill()
                code = None
            if process.log_path is None:
                continue
            if keep_logs or code != 0:
                self.console.print(f"{process.name} log kept: {process.log_path}")
            else:
                process.log_path.unlink(missing_ok=True)
        self.processes.clear()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so that cleanup runs when the demo itself is terminated."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
