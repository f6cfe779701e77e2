"""Every ```python and ```sql block in README.md and docs/*.md runs, so the docs cannot drift
from the code.

Conventions for doc writers (the line just before a fence may carry a marker comment):

- Blocks of one file run in order and share one namespace, like a shell session; each block is
  one pytest param (id `file:line`), and running one alone first replays the blocks before it.
- `<!-- docs-test: tasks -->` marks a task module (e.g. `shop/tasks.py`): it is written to a
  real module, imported here, and imported by the worker that runs beside the docs, so later
  blocks can `.send()` its tasks and `.get()` their results. Keep such a block to definitions
  (sends at import are suppressed) and give every task a unique name ("docs.<file>.<name>").
- `<!-- docs-test: skip REASON -->` skips a block (use sparingly, always with a reason).
- A block that assigns `HORSIES = {...}` has that dict validated like real settings.
- Top-level `await` is allowed (the block then runs under `asyncio.run`).
- A ```sql block runs statement by statement on a plain psycopg connection to the same database,
  in its file's order among the python blocks (the docs' worker is running, and it has published
  the docs' task modules to the catalogue). A line `-- => TEXT` after a statement states its
  result: the first column of the first row, as text.
- A ```rust block is a program of the Rust client: its first line names its file
  (`// clients/rust/examples/NAME.rs`), which must hold exactly the block; it is built and run
  (with the docs' worker), and each `// => TEXT` line must be a line of what it prints.
- Shell, settings files of other tools, unit files: use another fence language (bash, ini, text).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from horsies_django import app
from horsies_django.conf import parse
from horsies_django.schedules.declared import declared_schedules, undeclare
from tests.conftest import ROOT, WorkerProcess, database_url

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE_OPEN = re.compile(r"^```(?P<lang>python|sql|rust)\s*$")
ANY_PYTHON_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(python3?|py|pycon)\b", re.IGNORECASE)
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<kind>\w[\w-]*)\s*(?P<arg>.*?)\s*-->\s*$")
MODULE_PREFIX = "horsies_docs_"


@dataclass(frozen=True)
class Block:
    """One fenced python block of a doc file."""

    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    marker: str | None = None
    marker_arg: str = ""
    lang: str = "python"

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def module_name(self) -> str:
        stem = re.sub(r"\W", "_", self.path.stem.lower())
        return f"{MODULE_PREFIX}{stem}_{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """The ```python and ```sql blocks of one markdown file, with the marker comment before each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE_OPEN.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise AssertionError(f"{path.name}:{start + 1}: unclosed ```python fence")
        marker, arg = _marker_before(lines, start)
        code = "\n".join(lines[start + 1 : end]) + "\n"
        blocks.append(Block(path, start + 1, code, marker, arg, fence["lang"]))
        i = end + 1
    return blocks


def _marker_before(lines: list[str], index: int) -> tuple[str | None, str]:
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    match = MARKER.match(lines[j].strip()) if j >= 0 else None
    return (match["kind"], match["arg"]) if match else (None, "")


ALL_BLOCKS = [block for path in DOC_FILES if path.exists() for block in extract_blocks(path)]
TASK_BLOCKS = [b for b in ALL_BLOCKS if b.marker == "tasks"]


# --------------------------------------------------------------------------- running blocks


@dataclass
class FileSession:
    """The shared namespace of one doc file and how far its blocks have run."""

    namespace: dict[str, Any]
    next_index: int = 0
    failed: str | None = None
    blocks: list[Block] = field(default_factory=list)


@dataclass
class DocsEnvironment:
    module_dir: Path
    worker: WorkerProcess | None
    sessions: dict[Path, FileSession] = field(default_factory=dict)

    def session(self, path: Path) -> FileSession:
        if path not in self.sessions:
            stem = re.sub(r"\W", "_", path.stem.lower())
            namespace = {"__name__": f"{MODULE_PREFIX}{stem}_session"}
            blocks = [b for b in ALL_BLOCKS if b.path == path]
            self.sessions[path] = FileSession(namespace, blocks=blocks)
        return self.sessions[path]


def _truncate() -> None:
    with connection.cursor() as cur:
        cur.execute("TRUNCATE horsies_task_attempt, horsies_task, horsies_worker")


def _write_modules(directory: Path) -> None:
    """Each task-module block as a real module, plus settings that make the worker import them."""
    for block in TASK_BLOCKS:
        (directory / f"{block.module_name}.py").write_text(block.code)
    modules = ["tests.testapp.tasks", *(b.module_name for b in TASK_BLOCKS)]
    (directory / f"{MODULE_PREFIX}settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"HORSIES = {{**HORSIES, 'TASK_MODULES': {modules!r}}}  # noqa: F405\n"
    )


def _start_worker(directory: Path) -> WorkerProcess:
    log_path = directory / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)]),
    }
    cmd = [
        sys.executable, "-m", "django", "horsies_worker",
        "--settings", f"{MODULE_PREFIX}settings", "--processes", "2",
    ]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
    worker = WorkerProcess(proc, log_path)
    worker.wait_ready()
    return worker


@pytest.fixture(scope="module")
def docs_env(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocsEnvironment]:
    """Task modules on sys.path, one worker that knows them, and clean horsies tables."""
    directory = tmp_path_factory.mktemp("docs_modules")
    _write_modules(directory)
    sys.path.insert(0, str(directory))
    registered_before = set(app.definitions)
    scheduled_before = set(declared_schedules())
    env = DocsEnvironment(directory, None)
    with django_db_blocker.unblock():
        _truncate()
        env.worker = _start_worker(directory)
        try:
            yield env
        finally:
            env.worker.stop()
            env.worker.kill()
            _truncate()
            connection.close()
            sys.path.remove(str(directory))
            for name in [m for m in sys.modules if m.startswith(MODULE_PREFIX)]:
                del sys.modules[name]
            for task_name in set(app.definitions) - registered_before:
                app.unregister(task_name)
            for schedule_name in set(declared_schedules()) - scheduled_before:
                undeclare(schedule_name)  # their tasks are gone: later checks must not see them


def _compile(block: Block) -> CodeType:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code: CodeType = compile(block.code, block.id, "exec", flags=flags, dont_inherit=True)
    return code


async def _run_coroutine(code: CodeType, namespace: dict[str, Any]) -> None:
    try:
        await eval(code, namespace)
    finally:  # the ORM ran in asgiref's worker thread: don't leave its connection open
        await sync_to_async(connections.close_all, thread_sensitive=True)()


def _assigns_horsies(code: str) -> bool:
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "HORSIES" for t in node.targets)
        for node in ast.parse(code).body
    )


EXPECTED = re.compile(r"^--\s*=>\s?(?P<text>.*)$")


def sql_statements(code: str) -> list[tuple[str, str | None]]:
    """(statement, the result stated by a `-- => TEXT` line after it, or None)."""
    statements: list[tuple[str, str | None]] = []
    current: list[str] = []
    for line in code.splitlines():
        expected = EXPECTED.match(line.strip())
        if expected and statements and not current:
            statements[-1] = (statements[-1][0], expected["text"])
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append(("\n".join(current), None))
            current = []
    assert not "".join(current).strip(), f"a statement does not end with ';': {current}"
    return statements


def run_sql_block(block: Block) -> None:
    import psycopg

    with psycopg.connect(database_url(), autocommit=True) as conn:
        for statement, expected in sql_statements(block.code):
            cur = conn.execute(statement)
            row = cur.fetchone() if cur.description else None
            if expected is not None:
                assert row is not None, f"{statement!r} returned no row"
                assert str(row[0]) == expected, statement


RUST_EXAMPLE = re.compile(r"^// (?P<path>clients/rust/examples/(?P<name>\w+)\.rs)\n")


def run_rust_block(block: Block) -> None:
    found = RUST_EXAMPLE.match(block.code)
    assert found, f"{block.id}: start the block with // clients/rust/examples/NAME.rs"
    assert (ROOT / found["path"]).read_text() == block.code, f"{found['path']} differs"
    cargo = [str(ROOT / "clients/rust/offline-cargo.sh"), "build", "--quiet", "--example"]
    build = subprocess.run([*cargo, found["name"]], capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    done = subprocess.run(
        [str(ROOT / "clients/rust/target/debug/examples" / found["name"])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": database_url()},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    for expected in re.findall(r"^// => (.*)$", block.code, re.M):
        assert expected in printed, f"{expected!r} not printed:\n{done.stdout}"


def run_block(block: Block, env: DocsEnvironment, namespace: dict[str, Any]) -> None:
    """Execute one block in its file's namespace (a task module is imported instead)."""
    if block.lang == "sql":
        run_sql_block(block)
        return
    if block.lang == "rust":
        run_rust_block(block)
        return
    if block.marker == "tasks":
        module = importlib.import_module(block.module_name)
        namespace.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return
    code = _compile(block)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(_run_coroutine(code, namespace))
    else:
        exec(code, namespace)
    if _assigns_horsies(block.code):
        parse(namespace["HORSIES"])  # a settings snippet must be valid settings


def _run_through(index: int, session: FileSession, env: DocsEnvironment) -> None:
    """Run the blocks of a file up to and including `index`, each at most once."""
    while session.next_index <= index:
        if session.failed:
            pytest.fail(f"an earlier block of this file failed ({session.failed})")
        block = session.blocks[session.next_index]
        session.next_index += 1
        if block.marker == "skip":
            continue
        try:
            run_block(block, env, session.namespace)
        except BaseException:
            session.failed = block.id
            raise


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_doc_block_runs(block: Block, docs_env: DocsEnvironment) -> None:
    if block.marker == "skip":
        pytest.skip(f"marked docs-test: skip ({block.marker_arg})")
    session = docs_env.session(block.path)
    _run_through(session.blocks.index(block), session, docs_env)


# --------------------------------------------------------------------------- hygiene


def test_every_python_fence_is_collected() -> None:
    """A block spelled ```py, indented, or ```python3 would silently escape the test."""
    fences = sum(
        1
        for path in DOC_FILES
        if path.exists()
        for line in path.read_text().splitlines()
        if ANY_PYTHON_FENCE.match(line)
    )
    python_blocks = [b for b in ALL_BLOCKS if b.lang == "python"]
    assert any(b.lang == "rust" for b in ALL_BLOCKS)
    assert fences == len(python_blocks), "write python blocks as ```python at the start of a line"


def test_sql_statements_and_their_stated_results_are_told_apart() -> None:
    code = "SELECT 1;\n-- => 1\nSELECT 'a'\n    || 'b';\n-- a comment\nSELECT 2;\n"
    assert sql_statements(code) == [
        ("SELECT 1;", "1"),
        ("SELECT 'a'\n    || 'b';", None),
        ("-- a comment\nSELECT 2;", None),
    ]


def test_markers_are_known_and_skips_say_why() -> None:
    for block in ALL_BLOCKS:
        assert block.marker in (None, "skip", "tasks"), f"{block.id}: unknown marker"
        if block.marker == "skip":
            assert block.marker_arg, f"{block.id}: say why the block is skipped"


def test_task_names_in_task_modules_are_unique() -> None:
    names = [n for b in TASK_BLOCKS for n in re.findall(r"task\(\s*\"([^\"]+)\"", b.code)]
    assert len(names) == len(set(names)), f"task names repeat across the docs: {sorted(names)}"


LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", [p for p in DOC_FILES if p.exists()], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    missing = [
        target
        for target in LINK.findall(path.read_text())
        if not (path.parent / target).resolve().exists()
    ]
    assert not missing, f"{path.name} links to missing files: {missing}"


def test_every_error_code_is_documented() -> None:
    """docs/errors.md is the reference: each built-in code has a row there."""
    from horsies_django import types

    families = [
        types.OperationalErrorCode,
        types.ContractCode,
        types.RetrievalCode,
        types.OutcomeCode,
        types.TaskSendErrorCode,
        types.BrokerErrorCode,
    ]
    text = (ROOT / "docs" / "errors.md").read_text()
    undocumented = [
        f"{family.__name__}.{code.name}"
        for family in families
        for code in family
        if f"| `{code.value}` |" not in text
    ]
    assert not undocumented, f"add these codes to docs/errors.md: {undocumented}"
