"""Sending: validate and encode arguments, then insert on the caller's Django connection.

Sends never raise for bad input or a database outage: they return `Err(TaskSendError)`. A send
inside `transaction.atomic()` is part of that transaction, so it is visible (and wakes
workers, by the NOTIFY trigger) only if the caller commits.

Longer than 400 lines on purpose: single, bulk, async and replayed sends share one path of
checks, encoding and error mapping, and splitting it would let the variants drift apart.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from django.db import Error as DjangoDbError
from django.db import InterfaceError, OperationalError, connections, transaction
from uuid_utils import uuid7

from horsies_django import canonical, checks, codec, signals
from horsies_django.conf import MAX_JSONB_BYTES, horsies_settings
from horsies_django.db import producer_queries
from horsies_django.definitions import TaskDefinition
from horsies_django.exceptions import EncodingError
from horsies_django.handles import TaskHandle
from horsies_django.registered import suppress_sends as suppress_sends
from horsies_django.registered import suppressed as suppressed
from horsies_django.types import (
    DEFAULT_PRIORITY,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Err,
    Ok,
    Result,
    TaskSendError,
    TaskSendErrorCode,
    TaskSendOptions,
    TaskSendPayload,
    TaskSendResult,
)

RESEND_DELAYS_S: Final = (0.05, 0.2, 0.8)
# Far beyond any real schedule, and far within what PostgreSQL's timestamps can hold.
MAX_DELAY_S: Final = 100 * 365 * 24 * 3600
# Errors whose payload `retry_send` (or its async twin) can send as it is.
RESENDABLE: Final = frozenset({TaskSendErrorCode.ENQUEUE_FAILED, TaskSendErrorCode.ASYNC_CONTEXT})
DEFAULT_OPTIONS: Final = TaskSendOptions()

type EagerRunner = Callable[[Sequence[str]], None]

# HORSIES['EAGER']: what runs just-inserted tasks in this process. Eager mode is a runtime above
# this module, so it installs itself here (`eager.install()`, from AppConfig.ready).
_eager_runner: EagerRunner | None = None


def set_eager_runner(runner: EagerRunner | None) -> None:
    """Install the function that runs tasks just sent when HORSIES['EAGER'] is set."""
    global _eager_runner
    _eager_runner = runner


def invalid(message: str, exc: BaseException | None = None) -> Err[TaskSendError]:
    """Err(VALIDATION_FAILED) with `message` (and the exception that caused it, if any)."""
    return Err(TaskSendError(TaskSendErrorCode.VALIDATION_FAILED, message, exception=exc))


# --------------------------------------------------------------------------- preparing


def prepare(
    definition: TaskDefinition,
    kwargs: Mapping[str, Any],
    *,
    delay_seconds: float | None = None,
    options: TaskSendOptions | None = None,
) -> Result[TaskSendPayload, TaskSendError]:
    """Check and encode one send; Ok(payload) ready to insert, or Err(VALIDATION_FAILED)."""
    problem = _check_arguments(definition, kwargs) or _check_delay(delay_seconds)
    if problem:
        return invalid(f"{definition.name}: {problem}")
    opts = DEFAULT_OPTIONS if options is None else options
    problem = _check_options(opts)
    if problem:
        return invalid(f"{definition.name}: {problem}")
    priority = DEFAULT_PRIORITY if opts.priority is None else opts.priority
    delay_ms = canonical.delay_ms(delay_seconds)
    shas = canonical.shas_for(
        definition.name, definition.queue_name, priority, delay_ms, opts.good_until
    )
    limit = horsies_settings().MAX_PAYLOAD_BYTES
    row = _flat_row(definition, kwargs, limit, shas)
    if row is None:
        kwargs_json = _encode_arguments(definition, kwargs, limit)
        if isinstance(kwargs_json, Err):
            return kwargs_json
        task_id = str(uuid7())
        row = task_id, kwargs_json, shas.of(task_id, canonical.canonical_json(kwargs_json))
    task_id, kwargs_json, enqueue_sha = row
    return Ok(
        TaskSendPayload(
            task_id=task_id,
            task_name=definition.name,
            queue_name=definition.queue_name,
            priority=priority,
            kwargs_json=kwargs_json,
            delay_seconds=delay_seconds,
            good_until=opts.good_until,
            enqueue_sha=enqueue_sha,
        )
    )


def _flat_row(
    definition: TaskDefinition, kwargs: object, limit: int, shas: canonical.EnqueueSha
) -> tuple[str, str, str] | None:
    """(task id, kwargs JSON, enqueue_sha) of a send of known, flat arguments and every required
    one (`codec.encode_flat_arguments`), or None: then `prepare()` decides, at full length."""
    if type(kwargs) is not dict or not kwargs.keys() >= definition.required_params:
        return None
    text = codec.encode_flat_arguments(kwargs, definition.flat_types, limit)
    if text is None:
        return None
    task_id = str(uuid7())
    return task_id, text, shas.of_new(task_id, text if len(kwargs) < 2 else canonical.flat(kwargs))


def _encode_arguments(
    definition: TaskDefinition, kwargs: Mapping[str, Any], limit: int
) -> str | Err[TaskSendError]:
    """The arguments' JSON text, or Err: PAYLOAD_TOO_LARGE, or VALIDATION_FAILED for the rest."""
    try:
        return codec.encode_arguments(kwargs, limit, definition.declared_types)
    except codec.TooLargeError as exc:
        return Err(_too_large(definition.name, exc))
    except EncodingError as exc:
        return invalid(f"{definition.name}: argument {exc}", exc)
    except Exception as exc:  # user objects misbehaving (a Mapping whose items() raise, ...)
        return invalid(
            f"{definition.name}: the arguments could not be encoded "
            f"({type(exc).__name__}: {exc!s:.500}); pass JSON values, pydantic models or "
            "dataclasses",
            exc,
        )


def _too_large(task_name: str, exc: codec.TooLargeError) -> TaskSendError:
    where = f", past it at argument {exc.path}" if exc.path else ""
    return TaskSendError(
        TaskSendErrorCode.PAYLOAD_TOO_LARGE,
        f"{task_name}: the arguments are {exc.size_text} of JSON, over the limit of "
        f"HORSIES['MAX_PAYLOAD_BYTES'] = {exc.limit:,} bytes{where}; pass a reference instead "
        "(a row id, a file path, a URL) and load the data in the task, or raise "
        f"HORSIES['MAX_PAYLOAD_BYTES'] (at most {MAX_JSONB_BYTES:,})",
        retryable=False,
        exception=exc,
    )


def payload_sha(payload: TaskSendPayload) -> str:
    """Recompute the sha of a payload (differs from `payload.enqueue_sha` if it was altered)."""
    try:
        return canonical.enqueue_sha(
            task_id=payload.task_id,
            task_name=payload.task_name,
            queue_name=payload.queue_name,
            priority=payload.priority,
            kwargs_json=payload.kwargs_json,
            delay_ms=canonical.delay_ms(payload.delay_seconds),
            good_until=payload.good_until,
        )
    except (ValueError, TypeError, OverflowError):  # a forged payload: no sha matches it
        return ""


def _check_arguments(definition: TaskDefinition, kwargs: object) -> str | None:
    if (
        type(kwargs) is dict
        and kwargs.keys() <= definition.params.keys()
        and kwargs.keys() >= definition.required_params
    ):
        return None  # the common send: known names, every required one
    if type(kwargs) is not dict and not isinstance(kwargs, Mapping):
        return f"the arguments must be a dict of name -> value, not {type(kwargs).__name__}"
    unknown = [str(name) for name in kwargs if name not in definition.params]
    if unknown:
        takes = ", ".join(definition.params) or "no arguments"
        return f"unknown argument(s) {', '.join(unknown)}; the task takes {takes}"
    missing = sorted(definition.required_params.difference(kwargs))
    if missing:
        return f"missing required argument(s) {', '.join(missing)}"
    return None


def _check_delay(delay_seconds: float | None) -> str | None:
    if delay_seconds is None:
        return None
    if (
        isinstance(delay_seconds, bool)
        or not isinstance(delay_seconds, int | float)
        or not math.isfinite(delay_seconds)
        or not 0 <= delay_seconds <= MAX_DELAY_S
    ):
        return (
            f"delay_seconds={delay_seconds!r:.100} must be a finite number of seconds from 0 "
            f"to {MAX_DELAY_S:,} (100 years)"
        )
    return None


def _check_options(opts: object) -> str | None:
    if not isinstance(opts, TaskSendOptions):
        return f"options must be a TaskSendOptions, not {type(opts).__name__}"
    if opts.good_until is not None:
        if not isinstance(opts.good_until, datetime):
            return f"good_until={opts.good_until!r} must be a timezone-aware datetime"
        if opts.good_until.tzinfo is None or opts.good_until.utcoffset() is None:
            return (
                "good_until is a naive datetime: pass an aware one, e.g. "
                "django.utils.timezone.now() + timedelta(minutes=5)"
            )
    p = opts.priority
    if p is not None and (
        isinstance(p, bool) or not isinstance(p, int) or not PRIORITY_MIN <= p <= PRIORITY_MAX
    ):
        return f"priority={p!r} must be an int from {PRIORITY_MIN} (first) to {PRIORITY_MAX}"
    return None


# --------------------------------------------------------------------------- inserting


def _new_task(definition: TaskDefinition, payload: TaskSendPayload) -> producer_queries.NewTask:
    return producer_queries.NewTask(
        payload.task_id,
        payload.task_name,
        payload.queue_name,
        payload.priority,
        payload.kwargs_json,
        float(payload.delay_seconds or 0.0),
        payload.good_until,
        definition.timeout_ms,
        definition.max_retries,
        definition.options_json,
        payload.enqueue_sha,
    )


def enqueue(
    definition: TaskDefinition, payload: TaskSendPayload
) -> TaskSendResult[TaskHandle[Any]]:
    """Insert a prepared payload, resending on transient errors when configured."""
    settings = horsies_settings()
    alias = settings.DATABASE_ALIAS
    prepare = settings.PREPARED_STATEMENTS
    delays = RESEND_DELAYS_S if settings.RESEND_ON_TRANSIENT_ERR else ()
    result = _insert_once(alias, definition, payload, prepare)
    for delay in delays:
        if result.is_ok() or not result.err_value.retryable or _in_atomic(alias):
            break
        time.sleep(delay)  # backoff before resending to a database that just failed
        result = _insert_once(alias, definition, payload, prepare)
    if result.is_ok():
        _announce(definition, [payload.task_id])
        if settings.EAGER:
            _run_eagerly([payload.task_id])
    return result


def _announce(definition: TaskDefinition, task_ids: Sequence[str]) -> None:
    """Send `task_sent` for tasks just written (only when someone listens)."""
    if not signals.wanted(signals.task_sent, definition.name):
        return
    for task_id in task_ids:
        signals.emit(
            signals.task_sent, definition.name, task_id=task_id, queue_name=definition.queue_name
        )


def _run_eagerly(task_ids: Sequence[str]) -> None:
    """HORSIES['EAGER']: run just-inserted tasks now, in this process (tests only)."""
    if _eager_runner is not None:
        _eager_runner(task_ids)


def _insert_once(
    alias: str, definition: TaskDefinition, payload: TaskSendPayload, prepare: bool
) -> TaskSendResult[TaskHandle[Any]]:
    existing_sha = None
    try:
        if _in_atomic(alias):
            with transaction.atomic(using=alias):
                producer_queries.insert_task(alias, _new_task(definition, payload), prepare=prepare)
        else:
            producer_queries.insert_task(alias, _new_task(definition, payload), prepare=prepare)
    except (
        producer_queries.DuplicateTaskIdError
    ):  # a replay: the savepoint is rolled back, so we can read
        try:
            existing_sha = producer_queries.stored_enqueue_sha(alias, payload.task_id)
        except DjangoDbError as exc:
            return Err(_enqueue_failed(alias, payload, exc))
    except Exception as exc:  # the database's errors, or settings the checks would refuse
        return Err(_enqueue_failed(alias, payload, exc))
    if existing_sha is not None and existing_sha != payload.enqueue_sha:
        return Err(
            TaskSendError(
                TaskSendErrorCode.PAYLOAD_MISMATCH,
                f"task {payload.task_id} already exists with a different payload",
                task_id=payload.task_id,
                payload=payload,
            )
        )
    return Ok(TaskHandle(payload.task_id, payload.task_name))


def _in_atomic(alias: str) -> bool:
    return bool(connections[alias].in_atomic_block)


def _enqueue_failed(alias: str, payload: TaskSendPayload, exc: Exception) -> TaskSendError:
    """ENQUEUE_FAILED: retryable when the database was unreachable; a setup mistake that no
    retry fixes (not PostgreSQL, the app not installed) is named instead of the SQL error."""
    mistake = checks.setup_mistake(alias, payload.task_name)
    if mistake is None and not isinstance(exc, DjangoDbError):
        mistake = f"{type(exc).__name__}: {exc}"  # not the database's: a retry would not help
    if mistake is not None:
        return TaskSendError(
            TaskSendErrorCode.ENQUEUE_FAILED,
            f"could not enqueue {payload.task_name} {payload.task_id}: {mistake}",
            task_id=payload.task_id,
            payload=payload,
            exception=exc,
        )
    transient = isinstance(exc, OperationalError | InterfaceError)
    if not _in_atomic(alias):
        connections[alias].close_if_unusable_or_obsolete()
    hint = (
        "the database is unreachable; retry with retry_send(err)"
        if transient
        else "check that migrations are applied (manage.py migrate)"
    )
    return TaskSendError(
        TaskSendErrorCode.ENQUEUE_FAILED,
        f"could not enqueue {payload.task_name} {payload.task_id}: {exc} ({hint})",
        retryable=transient,
        task_id=payload.task_id,
        payload=payload,
        exception=exc,
    )


def replay(
    definition: TaskDefinition, error: object, *, scheduled: bool
) -> TaskSendResult[TaskHandle[Any]]:
    """Resend the exact payload of an ENQUEUE_FAILED or ASYNC_CONTEXT error (same task id)."""
    if suppressed():
        return suppressed_error(definition)
    if not isinstance(error, TaskSendError) or error.code not in RESENDABLE:
        code = getattr(error, "code", type(error).__name__)
        return invalid(
            f"{definition.name}: only ENQUEUE_FAILED and ASYNC_CONTEXT errors can be resent, "
            f"not {code}"
        )
    payload = error.payload
    if payload is None:
        return invalid(f"{definition.name}: the error carries no payload to resend")
    problem = _malformed(payload)
    if problem:
        return invalid(f"{definition.name}: the error's payload {problem}; send anew with send()")
    if payload.task_name != definition.name:
        return invalid(
            f"{definition.name}: this error belongs to task {payload.task_name!r}; "
            f"call {payload.task_name}.retry_send(err)"
        )
    if scheduled and payload.delay_seconds is None:
        return invalid(f"{definition.name}: retry_schedule needs an error from schedule()")
    if payload_sha(payload) != payload.enqueue_sha or payload.queue_name != definition.queue_name:
        return Err(
            TaskSendError(
                TaskSendErrorCode.PAYLOAD_MISMATCH,
                f"{definition.name}: the payload of task {payload.task_id} was altered after the "
                "failed send (its enqueue_sha no longer matches); send it anew with send()",
                task_id=payload.task_id,
                payload=payload,
            )
        )
    if in_event_loop():
        return Err(_async_context(payload))
    return enqueue(definition, payload)


_PAYLOAD_FIELD_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "task_id": str,
    "task_name": str,
    "queue_name": str,
    "priority": int,
    "kwargs_json": str,
    "delay_seconds": (int, float, type(None)),
    "good_until": (datetime, type(None)),
    "enqueue_sha": str,
}


def _malformed(payload: object) -> str | None:
    """Why a payload handed to a replay cannot be what `prepare()` made, if it cannot."""
    if not isinstance(payload, TaskSendPayload):
        return f"is a {type(payload).__name__}, not a TaskSendPayload"
    for name, expected in _PAYLOAD_FIELD_TYPES.items():
        if not isinstance(getattr(payload, name), expected):
            return f"has a {name} of type {type(getattr(payload, name)).__name__}"
    try:
        codec.check_size(payload.kwargs_json, horsies_settings().MAX_PAYLOAD_BYTES)
        codec.check_text(payload.kwargs_json, "kwargs_json")
    except EncodingError as exc:
        return f"is not storable: {exc}"
    return None


def suppressed_error(definition: TaskDefinition) -> Err[TaskSendError]:
    """Err(SEND_SUPPRESSED): a send made while task modules are imported."""
    return Err(
        TaskSendError(
            TaskSendErrorCode.SEND_SUPPRESSED,
            f"{definition.name}: send suppressed while task modules are imported; "
            "send from functions or views, not at module level",
        )
    )


def send(
    definition: TaskDefinition,
    kwargs: Mapping[str, Any],
    *,
    delay_seconds: float | None = None,
    options: TaskSendOptions | None = None,
) -> TaskSendResult[TaskHandle[Any]]:
    """Validate, encode and enqueue one task."""
    if suppressed():
        return suppressed_error(definition)
    prepared = prepare(definition, kwargs, delay_seconds=delay_seconds, options=options)
    if isinstance(prepared, Err):
        return prepared
    if in_event_loop():
        return Err(_async_context(prepared.value))
    return enqueue(definition, prepared.value)


def in_event_loop() -> bool:
    """True in a thread running an event loop, where Django refuses synchronous queries
    (unless DJANGO_ALLOW_ASYNC_UNSAFE is set, as Django's own guard allows)."""
    return asyncio._get_running_loop() is not None and not os.environ.get(
        "DJANGO_ALLOW_ASYNC_UNSAFE"
    )


def _async_context(payload: TaskSendPayload) -> TaskSendError:
    """ASYNC_CONTEXT: a synchronous send on an event loop, with the payload to send it async."""
    scheduled = payload.delay_seconds is not None
    call, retry = ("schedule", "retry_schedule") if scheduled else ("send", "retry_send")
    return TaskSendError(
        TaskSendErrorCode.ASYNC_CONTEXT,
        f"{payload.task_name}: a synchronous send inside a running event loop would block it "
        f"(Django refuses synchronous queries there): use `await task.{call}_async(...)`, or "
        f"pass this error to `await task.{retry}_async(err)` to send the same payload",
        task_id=payload.task_id,
        payload=payload,
    )


def _insert_many_once(
    alias: str, tasks: producer_queries.NewTasks, prepare: bool
) -> Exception | None:
    """One bulk INSERT (in a savepoint inside the caller's transaction); the error, if any."""
    try:
        if _in_atomic(alias):
            with transaction.atomic(using=alias):
                producer_queries.insert_tasks(alias, tasks, prepare=prepare)
        else:
            producer_queries.insert_tasks(alias, tasks, prepare=prepare)
    except Exception as exc:  # the database's errors, or settings the checks would refuse
        return exc
    return None


def _items(kwargs_list: object) -> Result[list[Any], str]:
    """The items of send_many's argument, or why it is not a list of argument dicts."""
    if isinstance(kwargs_list, str | bytes | Mapping) or not isinstance(kwargs_list, Iterable):
        return Err(
            f"send_many takes a list of argument dicts, not a {type(kwargs_list).__name__}, "
            "e.g. send_many([{'order_id': 1}, {'order_id': 2}])"
        )
    try:
        return Ok(list(kwargs_list))
    except Exception as exc:  # a generator that raises
        return Err(f"send_many could not read its list: {type(exc).__name__}: {exc!s:.500}")


def send_many(
    definition: TaskDefinition,
    kwargs_list: Sequence[Mapping[str, Any]],
    *,
    options: TaskSendOptions | None = None,
) -> list[TaskSendResult[TaskHandle[Any]]]:
    """Enqueue many tasks of one definition with a single INSERT; one Result per item.

    Each item gets the result `send()` would give it. Items of flat arguments (`codec.FLAT_TYPES`)
    are encoded and signed here without a `prepare()` each; the others go through `prepare()`.
    """
    read = _items(kwargs_list)
    if isinstance(read, Err):
        return [invalid(f"{definition.name}: {read.error}")]
    items = read.value
    if suppressed():
        return [suppressed_error(definition) for _ in items]
    opts = DEFAULT_OPTIONS if options is None else options
    if _check_options(opts) is not None:  # every item gets its own error from prepare()
        return [cast(Err[TaskSendError], prepare(definition, kw, options=opts)) for kw in items]
    priority = DEFAULT_PRIORITY if opts.priority is None else opts.priority
    shas = canonical.EnqueueSha(
        definition.name, definition.queue_name, priority, None, opts.good_until
    )
    limit = horsies_settings().MAX_PAYLOAD_BYTES
    flat, required = definition.flat_types, definition.required_params
    ids: list[str] = []
    texts: list[str] = []
    signatures: list[str] = []
    refused: dict[int, Err[TaskSendError]] = {}
    for i, kwargs in enumerate(items):  # _flat_row() inlined: this loop is the bulk send's cost
        text = (
            codec.encode_flat_arguments(kwargs, flat, limit)
            if type(kwargs) is dict and kwargs.keys() >= required
            else None
        )
        if text is not None:
            task_id = str(uuid7())
            ids.append(task_id)
            texts.append(text)
            kwargs_canonical = text if len(kwargs) < 2 else canonical.flat(kwargs)
            signatures.append(shas.of_new(task_id, kwargs_canonical))
            continue
        prepared = prepare(definition, kwargs, options=opts)
        if isinstance(prepared, Err):
            refused[i] = prepared
            continue
        ids.append(prepared.value.task_id)
        texts.append(prepared.value.kwargs_json)
        signatures.append(prepared.value.enqueue_sha)
    rows = producer_queries.NewTasks(
        *(definition.name, definition.queue_name, priority, opts.good_until),
        *(definition.timeout_ms, definition.max_retries, definition.options_json),
        *(ids, texts, signatures),
    )
    sent = _send_rows(definition, rows) if ids else []
    if not refused:
        return sent
    rest = iter(sent)
    return [refused[i] if i in refused else next(rest) for i in range(len(items))]


def _send_rows(
    definition: TaskDefinition, rows: producer_queries.NewTasks
) -> list[TaskSendResult[TaskHandle[Any]]]:
    """Insert send_many's rows, resending on transient errors when configured; one result per
    row."""

    def payloads() -> Iterator[TaskSendPayload]:  # what errors carry, for a replay
        for task_id, text, signature in zip(
            rows.task_ids, rows.kwargs_json, rows.enqueue_shas, strict=True
        ):
            yield TaskSendPayload(
                *(task_id, rows.task_name, rows.queue_name, rows.priority, text, None),
                *(rows.good_until, signature),
            )

    if in_event_loop():
        return [Err(_async_context(payload)) for payload in payloads()]
    settings = horsies_settings()
    alias, prepare = settings.DATABASE_ALIAS, settings.PREPARED_STATEMENTS
    failure = _insert_many_once(alias, rows, prepare)
    for delay in RESEND_DELAYS_S if settings.RESEND_ON_TRANSIENT_ERR else ():
        transient = isinstance(failure, OperationalError | InterfaceError)
        if failure is None or not transient or _in_atomic(alias):
            break
        time.sleep(delay)  # backoff before resending to a database that just failed
        failure = _insert_many_once(alias, rows, prepare)
    if failure is not None:
        return [Err(_enqueue_failed(alias, payload, failure)) for payload in payloads()]
    name, ids = definition.name, rows.task_ids
    sent: list[TaskSendResult[TaskHandle[Any]]] = [Ok(TaskHandle(i, name)) for i in ids]
    _announce(definition, ids)
    if settings.EAGER:
        _run_eagerly(ids)
    return sent
