"""Hostile input to every send entry point: an `Err` that names the problem, never an exception.

Oversized payloads are refused (PAYLOAD_TOO_LARGE) before anything copies them, values that
PostgreSQL's jsonb cannot store or would alter are refused (VALIDATION_FAILED), and whatever is
accepted comes back unchanged from a real worker (a property-based test with hypothesis).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic import BaseModel

from horsies_django import Err, Ok, TaskSendError, TaskSendErrorCode, TaskSendOptions, codec
from horsies_django.codec import MAX_NESTING_DEPTH
from horsies_django.handles import TaskHandle
from horsies_django.sending import payload_sha
from horsies_django.types import Result
from tests.conftest import ROOT, database_url, sql_value
from tests.testapp.hostile_tasks import Reading, Sample, echo_any
from tests.testapp.tasks import add, echo
from tests.worker_helpers import TASK_MODULES, StartWorker, configured_workers

type SendResult = Result[TaskHandle[Any], TaskSendError]

pytestmark = pytest.mark.usefixtures("clean_tables")

HOSTILE_TASK_MODULES = (*TASK_MODULES, "tests.testapp.hostile_tasks")
REFUSED = (TaskSendErrorCode.VALIDATION_FAILED, TaskSendErrorCode.PAYLOAD_TOO_LARGE)


def task_count() -> int:
    return int(sql_value("SELECT count(*) FROM horsies_task"))


def refused(result: SendResult, code: TaskSendErrorCode) -> TaskSendError:
    assert isinstance(result, Err), result
    assert result.error.code is code, result.error
    assert not result.error.retryable
    assert result.error.payload is None
    return result.error


def nested(depth: int, leaf: Any = 1) -> Any:
    """`depth` levels of lists and dicts, alternating, around `leaf`."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def with_limits(**limits: int) -> Any:
    return override_settings(HORSIES={**settings.HORSIES, **limits})


# --------------------------------------------------------------------------- the payload limit


def test_a_payload_over_the_limit_is_refused_before_the_database() -> None:
    with with_limits(MAX_PAYLOAD_BYTES=2048), CaptureQueriesContext(connection) as queries:
        error = refused(echo.send(value="x" * 5000), TaskSendErrorCode.PAYLOAD_TOO_LARGE)
    assert queries.captured_queries == []
    assert "at least 5,000 bytes of JSON" in error.message
    assert "HORSIES['MAX_PAYLOAD_BYTES'] = 2,048 bytes" in error.message
    assert "past it at argument value" in error.message
    assert "pass a reference instead" in error.message
    assert task_count() == 0


def test_the_limit_counts_utf8_bytes_of_the_whole_payload_exactly() -> None:
    """`{"value":"..."}` is 12 bytes around the string: 2,048 bytes pass, 2,049 do not."""
    with with_limits(MAX_PAYLOAD_BYTES=2048):
        assert echo.send(value="x" * 2036).is_ok()
        assert echo.send(value="é" * 1018).is_ok()  # two bytes each in UTF-8
        over_ascii = refused(echo.send(value="x" * 2037), TaskSendErrorCode.PAYLOAD_TOO_LARGE)
        over_utf8 = refused(echo.send(value="é" * 1019), TaskSendErrorCode.PAYLOAD_TOO_LARGE)
        many = refused(
            echo.send(value=[[n, "ab"] for n in range(300)]), TaskSendErrorCode.PAYLOAD_TOO_LARGE
        )
    assert "arguments are 2,049 bytes of JSON" in over_ascii.message
    assert "arguments are 2,050 bytes of JSON" in over_utf8.message
    assert "arguments are 3," in many.message  # small strings, but 3 KB of JSON in all
    assert task_count() == 2


def test_the_default_limit_is_one_mebibyte_for_every_entry_point() -> None:
    big = "y" * (1024 * 1024 + 1)
    results: list[SendResult] = [
        echo.send(value=big),
        echo.schedule(5, value=big),
        echo.with_options(TaskSendOptions(priority=3)).send(value=big),
        asyncio.run(echo.send_async(value=big)),
        *echo.send_many([{"value": big}, {"value": "small"}])[:1],
    ]
    for result in results:
        error = refused(result, TaskSendErrorCode.PAYLOAD_TOO_LARGE)
        assert "MAX_PAYLOAD_BYTES'] = 1,048,576 bytes" in error.message
    assert task_count() == 1  # send_many's small item


SEND_300_MB = """
import json, resource, sys
import django
django.setup()
from tests.testapp.tasks import echo

payload = "z" * int(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = echo.send(value=payload)
error = result.err_value if result.is_err() else None
print(json.dumps({
    "before_kb": before,
    "code": None if error is None else str(error.code),
    "retryable": None if error is None else error.retryable,
}))
"""


def test_sending_300_mb_is_refused_in_a_small_multiple_of_its_memory(tmp_path: Path) -> None:
    """The peak RSS (ru_maxrss from wait4) of a process that sends a 300 MiB string."""
    payload_bytes = 300 * 1024 * 1024
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url()}
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", SEND_300_MB, str(payload_bytes)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, stderr_path.read_text()
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["code"] == "PAYLOAD_TOO_LARGE", (report, stderr_path.read_text())
    assert report["retryable"] is False
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    assert peak < 2 * payload_bytes, f"peak RSS {peak / 2**20:.0f} MiB for a 300 MiB payload"
    grown = peak - report["before_kb"] * 1024
    assert grown < payload_bytes // 2, f"sending grew the RSS by {grown / 2**20:.0f} MiB"
    assert task_count() == 0


# --------------------------------------------------------------------------- what jsonb cannot keep


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        pytest.param(nested(5000), ["more than 64 levels deep (or contains"], id="5000-deep"),
        pytest.param(nested(MAX_NESTING_DEPTH + 1), ["more than 64 levels deep"], id="65-deep"),
        pytest.param(10**4300, ["int of more than 4,300 digits", "str(n)"], id="huge-int"),
        pytest.param(-(10**5000), ["int of more than 4,300 digits"], id="huge-negative-int"),
        pytest.param(1e300, ["is 1e+300", "back as integers", "int(value)"], id="1e300"),
        pytest.param(-1.5e16, ["is -1.5e+16"], id="-1.5e16"),
        pytest.param(math.nan, ["is nan: JSON has no NaN"], id="nan"),
        pytest.param({"k": -math.inf}, ["value.k is -inf"], id="-inf"),
        pytest.param("a\x00b", ["contains a NUL character"], id="nul"),
        pytest.param({"\udc80": 1}, ["value key contains a lone surrogate"], id="surrogate-key"),
        pytest.param(
            Reading(sensor="s", value=math.inf, tags=[]), ["value.value is inf"], id="model-inf"
        ),
        pytest.param(
            Sample(label="\x00", counts=[]), ["value.label contains a NUL"], id="dataclass-nul"
        ),
        pytest.param({1, 2}, ["is a set, which is not JSON"], id="set"),
        pytest.param(Decimal("1.5"), ["is a Decimal, which is not JSON"], id="decimal"),
        pytest.param({3: "x"}, ["non-string key 3"], id="int-key"),
    ],
)
def test_values_jsonb_cannot_keep_are_refused_naming_the_problem(
    value: Any, fragments: list[str]
) -> None:
    error = refused(echo_any.send(value=value), TaskSendErrorCode.VALIDATION_FAILED)
    for fragment in fragments:
        assert fragment in error.message
    assert error.message.startswith("tests.hostile.echo_any: argument value")
    assert task_count() == 0


def test_nesting_up_to_the_limit_is_accepted() -> None:
    """A model counts as the dict of its fields: Reading.tags is two levels below it."""
    assert echo_any.send(value=nested(MAX_NESTING_DEPTH)).is_ok()
    reading = Reading(sensor="s", value=1.0, tags=["t"])
    assert echo_any.send(value=nested(MAX_NESTING_DEPTH - 2, reading)).is_ok()
    error = refused(
        echo_any.send(value=nested(MAX_NESTING_DEPTH - 1, reading)),
        TaskSendErrorCode.VALIDATION_FAILED,
    )
    assert "tags nests more than 64 levels deep" in error.message
    assert task_count() == 2


def test_values_that_contain_themselves_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    mapping: dict[str, Any] = {}
    mapping["self"] = mapping
    for value in (loop, mapping):
        error = refused(echo_any.send(value=value), TaskSendErrorCode.VALIDATION_FAILED)
        assert "(or contains itself)" in error.message
        assert len(error.message) < 1_000
    assert task_count() == 0


class Exploding(dict[str, Any]):
    """A Mapping whose items() raise: user code misbehaving inside a send."""

    def items(self) -> Any:
        raise RuntimeError("items exploded")


class Unserializable(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    thing: Any


@pytest.mark.parametrize(
    ("send", "fragment"),
    [
        (lambda: echo_any.send(value=Exploding(a=1)), "RuntimeError: items exploded"),
        (lambda: echo_any.send(value=Unserializable(thing=object())), "pydantic cannot turn"),
        (lambda: many(None)[0], "send_many takes a list of argument dicts, not a Non"),
        (lambda: many({"a": 1})[0], "not a dict"),
        (lambda: many([1, "a"])[1], "must be a dict of name -> value, not str"),
        (lambda: many([{1: 2}])[0], "unknown argument(s) 1"),
        (lambda: many(_raising_items())[0], "could not read its list: ValueError"),
        (lambda: add.send_many([{"a": 1, "b": 2}], "opts")[0], "TaskSendOptions, not str"),  # type: ignore[arg-type]
        (lambda: add.with_options("urgent").send(a=1, b=2), "TaskSendOptions, not str"),  # type: ignore[arg-type]
        (lambda: add.schedule(1e300, a=1, b=2), "from 0 to 3,153,600,000 (100 years)"),
        (lambda: add.schedule(math.nan, a=1, b=2), "delay_seconds=nan"),
    ],
)
def test_misbehaving_input_is_a_validation_error_not_an_exception(
    send: Callable[[], SendResult], fragment: str
) -> None:
    assert fragment in refused(send(), TaskSendErrorCode.VALIDATION_FAILED).message
    assert task_count() == 0


def many(kwargs_list: Any) -> list[SendResult]:
    """tests.add's send_many with an argument of any type."""
    results: list[SendResult] = add.send_many(kwargs_list)
    return results


def _raising_items() -> Iterator[dict[str, int]]:
    yield {"a": 1, "b": 2}
    raise ValueError("no more")


# --------------------------------------------------------------------------- replays


def _failed_send(task: Any, **kwargs: Any) -> TaskSendError:
    """A real ENQUEUE_FAILED: the caller's connection is terminated by the server first."""
    connection.ensure_connection()
    assert connection.connection is not None
    pid = connection.connection.info.backend_pid
    assert sql_value("SELECT pg_terminate_backend(%s, 10000)", pid) is True
    result: SendResult = task.send(**kwargs)
    assert isinstance(result, Err), result
    assert result.error.code is TaskSendErrorCode.ENQUEUE_FAILED
    return result.error


def _forged(error: TaskSendError, **changes: Any) -> TaskSendError:
    """The error with its payload changed (and re-signed when its fields are still strings, as
    a caller could do by hand with `payload_sha`)."""
    assert error.payload is not None
    payload = dataclasses.replace(error.payload, **changes)
    if all(isinstance(value, str) for value in changes.values()):
        payload = dataclasses.replace(payload, enqueue_sha=payload_sha(payload))
    return dataclasses.replace(error, payload=payload)


NOT_A_PAYLOAD: Any = ("not", "a", "payload")


def test_replays_of_forged_payloads_are_refused_not_raised() -> None:
    error = _failed_send(echo, value="fine")
    with with_limits(MAX_PAYLOAD_BYTES=1024):
        forged = {
            "big": _forged(error, kwargs_json=json.dumps({"value": "x" * 2000})),
            "surrogate": _forged(error, kwargs_json='{"value": "\udc00"}'),
            "priority": _forged(error, priority=None),
            "delay": _forged(error, delay_seconds=[1]),
            "good_until": _forged(error, good_until=0),
            "payload": dataclasses.replace(error, payload=NOT_A_PAYLOAD),
        }
        messages = {
            name: refused(replay(bad), TaskSendErrorCode.VALIDATION_FAILED).message
            for name, bad in forged.items()
            for replay in (echo.retry_send, echo.retry_schedule)
        }
    assert all("send anew with send()" in message for message in messages.values()), messages
    assert "over 1,024 bytes" in messages["big"]
    assert "contains a lone surrogate" in messages["surrogate"]
    assert "has a priority of type NoneType" in messages["priority"]
    assert "is a tuple, not a TaskSendPayload" in messages["payload"]
    assert task_count() == 0
    assert echo.retry_send(error).is_ok()
    assert task_count() == 1


# --------------------------------------------------------------------------- property: any value


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


@pytest.fixture
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis caches files (its Unicode tables) in `.hypothesis/` of the working directory,
    which pytest then warns about while collecting; keep them out of the repository."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


def all_nines(digits: int) -> int:
    """The largest int of `digits` digits (kept out of strategy reprs, which fail past 4,300)."""
    return int(10**digits - 1)


ANY_CHAR = st.sampled_from(["\x00", "\ud800", "\udfff", "é", "🐎", '"', "\\"]) | st.characters(
    exclude_categories=()
)
TEXT = st.text(ANY_CHAR, max_size=12)
NUMBERS = (
    st.integers()
    | st.integers(min_value=4290, max_value=4310).map(all_nines)  # 4,300 digits fit, not more
    | st.sampled_from([2**63, -(2**64), 0])
    | st.floats()
    | st.sampled_from([-0.0, 5e-324, 1e15 + 0.5, 9.999999999999998e15, 1e16, 1e300])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
MODELS = st.builds(
    Reading, sensor=TEXT, value=st.floats(), tags=st.lists(TEXT, max_size=3)
) | st.builds(Sample, label=TEXT, counts=st.lists(st.integers(), max_size=3))
NOT_JSON = st.sampled_from(
    [object(), {1, 2}, b"bytes", Decimal("2.5"), complex(1, 2), datetime(2024, 1, 1, tzinfo=UTC)]
) | st.dictionaries(st.integers(), SCALARS, min_size=1, max_size=2)
DEEP = st.integers(min_value=MAX_NESTING_DEPTH - 2, max_value=MAX_NESTING_DEPTH + 3).map(nested)
ANY_VALUE = st.recursive(
    SCALARS | MODELS | NOT_JSON | DEEP,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def storable(value: Any) -> bool:
    """The reference rule, written apart from the codec: can jsonb keep `value` unchanged?"""
    return _storable(value, 0)


def _storable(value: Any, enclosing: int) -> bool:
    if isinstance(value, str):
        return not any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < 10**4300  # Python reads back at most 4,300 digits
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) < 1e16
    if enclosing >= MAX_NESTING_DEPTH:
        return False
    if isinstance(value, list | tuple):
        return all(_storable(item, enclosing + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key != codec.TYPE_KEY and _storable(key, 0) for key in value
        ) and all(_storable(item, enclosing + 1) for item in value.values())
    if isinstance(value, BaseModel | Sample):
        fields = value.model_dump() if isinstance(value, BaseModel) else vars(value)
        return _storable(fields, enclosing)
    return False


def as_json(value: Any) -> Any:
    """What an accepted value comes back as: tuples are JSON arrays, so lists."""
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    return value


@pytest.mark.usefixtures("hypothesis_home")
def test_any_value_round_trips_through_a_worker_or_is_refused(start: StartWorker) -> None:
    start({"TASK_MODULES": HOSTILE_TASK_MODULES}, "--processes", "2")
    outcomes = {True: 0, False: 0}  # accepted (and round-tripped), refused

    # CI settings: derandomize (the same examples every run, so a failure reproduces and no
    # run is flaky), no example database on disk, no deadline (each example is a real round
    # trip through a worker, whose time depends on the machine), and the function-scoped
    # fixture check off: one worker and one set of tables serve every example on purpose.
    @hypothesis_settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(value=ANY_VALUE)
    def round_trip(value: Any) -> None:
        rows_before = task_count()
        result = echo_any.send(value=value)
        outcomes[isinstance(result, Ok)] += 1
        if isinstance(result, Err):
            assert result.error.code in REFUSED, result.error
            assert not storable(value), f"refused a storable value: {result.error.message}"
            assert task_count() == rows_before
            return
        assert storable(value), f"accepted a value jsonb cannot keep: {value!r:.300}"
        returned = result.value.get(timeout_ms=60_000)
        assert returned.is_ok(), returned
        assert returned.ok_value == as_json(value)

    round_trip()
    # Both sides are exercised (a codec refusing everything would fail the oracle anyway).
    assert min(outcomes.values()) >= 60, outcomes


async def _send_async_then_close(value: Any) -> SendResult:
    result: SendResult = await echo_any.send_async(value=value)
    await sync_to_async(connections.close_all, thread_sensitive=True)()
    return result


@pytest.mark.usefixtures("hypothesis_home")
def test_every_entry_point_returns_the_same_verdict_for_any_value() -> None:
    """send, schedule, with_options().send, send_async and send_many: never an exception, and
    the same verdict for the same value: Ok if jsonb keeps it unchanged, else VALIDATION_FAILED."""

    @hypothesis_settings(
        max_examples=100,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(value=ANY_VALUE)
    def same_verdict(value: Any) -> None:
        results: list[SendResult] = [
            echo_any.send(value=value),
            echo_any.schedule(60, value=value),
            echo_any.with_options(TaskSendOptions(priority=1)).send(value=value),
            asyncio.run(_send_async_then_close(value)),
            *echo_any.send_many([{"value": value}]),
        ]
        verdicts = {"ok" if isinstance(r, Ok) else r.error.code for r in results}
        assert len(verdicts) == 1, results
        assert verdicts == ({"ok"} if storable(value) else {TaskSendErrorCode.VALIDATION_FAILED})

    same_verdict()
