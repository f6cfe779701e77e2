"""System checks for `settings.HORSIES`: every problem is one message with a stable id.

The typed model in `conf.py` is the single source of the rules for values; this module turns
its validation errors into `horsies_django.E0xx` messages with a hint, and adds the checks a
model cannot make alone (databases, imports, registered tasks). Ids never change meaning:

E001 unknown key · E002 wrong type or value · E003 CUSTOM mode without queues ·
E004 duplicate queue names · E005 non-positive concurrency cap · E006 unknown database alias ·
E007 database is not PostgreSQL · E008 psycopg 2 instead of psycopg 3 ·
E009 task module cannot be imported · E010 built-in error code in an exception mapper ·
E011 EXCEPTION_MAPPER key is not an exception class · E012 CUSTOM_QUEUES in DEFAULT mode ·
E013 tasks defined while horsies_django is not in INSTALLED_APPS ·
W001 claim lease too short for the heartbeat · W002 stale-worker threshold too short.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from horsies_django import conf
from horsies_django.registered import suppress_sends, table
from horsies_django.types import BUILTIN_CODES, check_user_code

TAG: Final = "horsies_django"
CAP_FIELDS: Final = frozenset({"CLUSTER_WIDE_CAP", "max_concurrency"})
BOUND_ERRORS: Final = frozenset({"greater_than_equal", "greater_than"})
HEARTBEATS_PER_LEASE: Final = 2

# Model-level (cross-field) errors: pydantic error type, or a phrase of conf.py's message.
MODEL_ERRORS: Final = (
    ("custom_without_queues", "needs CUSTOM_QUEUES", "E003"),
    ("duplicate_queue_names", "must be unique", "E004"),
    ("queues_in_default_mode", "only used with QUEUE_MODE", "E012"),
)
MODEL_HINTS: Final = {
    "E003": "Add HORSIES['CUSTOM_QUEUES'] = [{'name': 'default', 'priority': 1}], "
    "or set QUEUE_MODE to 'DEFAULT'.",
    "E004": "Give every queue in HORSIES['CUSTOM_QUEUES'] its own name.",
    "E012": "Set HORSIES['QUEUE_MODE'] = 'CUSTOM' to use these queues, or remove CUSTOM_QUEUES.",
}


def _id(code: str) -> str:
    return f"{TAG}.{code}"


def _error(code: str, message: str, hint: str, obj: Any = None) -> CheckMessage:
    return Error(message, hint=hint, obj=obj, id=_id(code))


@register(TAG)
def check_horsies_settings(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Validate `settings.HORSIES` and what it points at."""
    raw = getattr(settings, "HORSIES", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return [
            _error(
                "E002",
                f"settings.HORSIES must be a dict, not {type(raw).__name__}.",
                "Write HORSIES = {} (every key is optional).",
            )
        ]
    messages: list[CheckMessage] = []
    try:
        parsed: conf.HorsiesSettings | None = conf.parse(raw)
    except ValidationError as exc:
        parsed = None
        messages.extend(_from_validation(exc.errors(), raw))
    messages.extend(database_messages(raw.get("DATABASE_ALIAS", "default")))
    messages.extend(_task_module_messages(raw.get("TASK_MODULES")))
    messages.extend(_mapper_messages(raw.get("EXCEPTION_MAPPER")))
    messages.extend(_registered_mapper_messages())
    if parsed is not None:
        messages.extend(_timing_warnings(parsed))
    return messages


# --------------------------------------------------------------------------- pydantic errors


def _from_validation(errors: Sequence[ErrorDetails], raw: dict[str, Any]) -> list[CheckMessage]:
    return [_from_error(err, raw) for err in errors]


def _path(loc: Sequence[int | str]) -> str:
    return "HORSIES" + "".join(f"[{part!r}]" for part in loc)


def _from_error(err: ErrorDetails, raw: dict[str, Any]) -> CheckMessage:
    loc, kind = tuple(err["loc"]), err["type"]
    if not loc:
        return _from_model_error(err)
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    where = _path(loc)
    if loc[-1] in CAP_FIELDS and kind in BOUND_ERRORS:
        return _error(
            "E005",
            f"{where} is {err['input']!r}: {err['msg']}.",
            "A queue's max_concurrency must be 0 or more (None: no cap); CLUSTER_WIDE_CAP must "
            "be 1 or more (None: no cap).",
        )
    return _error(
        "E002",
        f"{where} is {err['input']!r}: {err['msg']}.",
        _value_hint(loc),
    )


def _from_model_error(err: ErrorDetails) -> CheckMessage:
    message = err["msg"].removeprefix("Value error, ")
    for kind, phrase, code in MODEL_ERRORS:
        if err["type"] == kind or phrase in message:
            return _error(code, f"HORSIES: {message}.", MODEL_HINTS[code])
    return _error("E002", f"HORSIES: {message}.", "See docs/settings.md for every key.")


def _model_for(loc: Sequence[int | str]) -> type[BaseModel]:
    return conf.QueueSpec if loc and loc[0] == "CUSTOM_QUEUES" else conf.HorsiesSettings


def _unknown_key(loc: Sequence[int | str]) -> CheckMessage:
    parent = loc[:-1]
    key = str(loc[-1])
    known = list(_model_for(parent).model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f"Did you mean {close[0]!r}?"
    else:
        hint = f"Remove it; the known keys are: {', '.join(known)}."
    return _error("E001", f"{_path(parent)} has an unknown key {key!r}.", hint)


def _value_hint(loc: Sequence[int | str]) -> str:
    model = _model_for(loc)
    field = model.model_fields.get(str(loc[-1]))
    if field is None:
        return "See docs/settings.md for the expected value."
    default = field.get_default(call_default_factory=True)
    annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
    return f"Expected {annotation} (default {default!r}); see docs/settings.md."


# --------------------------------------------------------------------------- databases


def database_messages(alias: object) -> list[CheckMessage]:
    """E006 for an alias missing from DATABASES, E007/E008 for a backend tasks cannot use."""
    if not isinstance(alias, str):
        return []  # reported as E002 by the model
    databases: Mapping[str, Any] = settings.DATABASES
    if alias not in databases:
        return [
            _error(
                "E006",
                f"HORSIES['DATABASE_ALIAS'] is {alias!r}, which is not in settings.DATABASES.",
                f"Use one of {sorted(databases)} or add {alias!r} to DATABASES.",
            )
        ]
    return database_backend_messages(alias, str(databases[alias].get("ENGINE", "")))


def database_backend_messages(alias: str, engine: str) -> list[CheckMessage]:
    """E007/E008 for the backend `engine` of database `alias`."""
    from django.db.utils import load_backend

    try:
        backend = load_backend(engine)
    except ImproperlyConfigured as exc:
        if "postgres" in engine or "psycopg" in str(exc):
            return [_no_psycopg3(alias, f"its backend {engine!r} cannot load: {exc}")]
        return [_not_postgresql(alias, engine)]
    if getattr(backend.DatabaseWrapper, "vendor", None) != "postgresql":
        return [_not_postgresql(alias, engine)]
    from django.db.backends.postgresql import psycopg_any

    if not psycopg_any.is_psycopg3:
        return [_no_psycopg3(alias, "it runs on psycopg2")]
    return []


def _not_postgresql(alias: str, engine: str) -> CheckMessage:
    return _error(
        "E007",
        f"Database {alias!r} (ENGINE {engine!r}) is not PostgreSQL; horsies_django stores tasks "
        "with PostgreSQL features (SKIP LOCKED, LISTEN/NOTIFY).",
        "Point HORSIES['DATABASE_ALIAS'] at a database with ENGINE "
        "'django.db.backends.postgresql'.",
    )


def _no_psycopg3(alias: str, why: str) -> CheckMessage:
    return _error(
        "E008",
        f"Database {alias!r} needs psycopg 3, but {why}.",
        "pip install 'psycopg[binary]>=3.2' (Django uses psycopg 3 whenever it is installed).",
    )


# --------------------------------------------------------------------------- installation


@register(TAG)
def check_installed(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E013: tasks are defined in a project whose INSTALLED_APPS lacks horsies_django.

    Registered when horsies_django is imported, so it runs only if something imported it (a
    task module) before the checks ran; a send names the same fix in any case.
    """
    from django.apps import apps

    if apps.is_installed(TAG) or not table.definitions:
        return []
    return [app_not_installed(sorted(table.definitions))]


def app_not_installed(task_names: Sequence[str]) -> CheckMessage:
    shown = ", ".join(repr(name) for name in task_names[:5])
    more = f" and {len(task_names) - 5} more" if len(task_names) > 5 else ""
    return _error(
        "E013",
        f"Tasks are defined ({shown}{more}), but 'horsies_django' is not in INSTALLED_APPS: "
        "its tables are never created, so every send fails, and there is no horsies_worker "
        "command.",
        "Add 'horsies_django' to INSTALLED_APPS, then run manage.py migrate.",
    )


def setup_mistake(alias: str, task_name: str) -> str | None:
    """What these checks say about the setup a send needs, if it is wrong (sends ask after a
    failed insert: `manage.py shell` and scripts do not run the checks)."""
    from django.apps import apps

    found = database_messages(alias)
    if not found and not apps.is_installed(TAG):
        found = [app_not_installed([task_name])]
    if not found:
        return None
    return f"{found[0].msg} {found[0].hint} (system check {found[0].id})"


# --------------------------------------------------------------------------- imports and codes


def _task_module_messages(modules: object) -> list[CheckMessage]:
    if not isinstance(modules, list | tuple):
        return []  # None means autodiscovery; other types are E002
    messages: list[CheckMessage] = []
    for name in modules:
        if not isinstance(name, str):
            continue
        try:
            with suppress_sends():
                importlib.import_module(name)
        except Exception as exc:
            messages.append(
                _error(
                    "E009",
                    f"HORSIES['TASK_MODULES'] lists {name!r}, which cannot be imported: "
                    f"{type(exc).__name__}: {exc}",
                    "Give dotted module paths such as 'myapp.tasks', and make sure they import "
                    "cleanly (python -c 'import myapp.tasks').",
                )
            )
    return messages


def _mapper_messages(mapper: object) -> list[CheckMessage]:
    if not isinstance(mapper, dict):
        return []  # reported as E002 by the model
    messages: list[CheckMessage] = []
    for key, code in mapper.items():
        if not isinstance(key, str) or not isinstance(code, str):
            continue
        where = f"HORSIES['EXCEPTION_MAPPER'][{key!r}]"
        problem = import_exception_class(key)
        if problem is not None:
            messages.append(
                _error(
                    "E011",
                    f"{where}: {problem}.",
                    "Keys are dotted exception classes, e.g. 'requests.exceptions.Timeout' "
                    "or a builtin such as 'TimeoutError'.",
                )
            )
        messages.extend(_code_messages(code, where))
    return messages


def _code_messages(code: str, where: str, obj: Any = None) -> Iterator[CheckMessage]:
    if code in BUILTIN_CODES:
        member = BUILTIN_CODES[code]
        yield _error(
            "E010",
            f"{where} maps to {code!r}, a built-in error code "
            f"({type(member).__name__}.{member.name}) that horsies_django reserves for itself.",
            "Use a code of your own in UPPER_SNAKE_CASE, e.g. 'UPSTREAM_TIMEOUT'.",
            obj,
        )
        return
    try:
        check_user_code(code, where=where)
    except ValueError as exc:
        yield _error("E002", f"{exc}.", "Error codes are UPPER_SNAKE_CASE strings.", obj)


def _registered_mapper_messages() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, definition in sorted(table.definitions.items()):
        for exc_type, code in definition.exception_mapper.items():
            where = f"task {name!r}: exception_mapper[{exc_type.__name__}]"
            messages.extend(m for m in _code_messages(code, where, name) if m.id == _id("E010"))
    return messages


def import_exception_class(dotted: str) -> str | None:
    """None when `dotted` names an exception class, else what is wrong with it."""
    if "." not in dotted:
        found = getattr(builtins, dotted, None)
        if found is None:
            return f"{dotted!r} is not a builtin; write the full path 'package.module.ClassName'"
        return _not_exception(dotted, found)
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return f"{'.'.join(parts[:split])!r} has no attribute {attr!r}"
        return _not_exception(dotted, obj)
    return f"no module of {dotted!r} can be imported"


def _not_exception(dotted: str, obj: object) -> str | None:
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return None
    return f"{dotted!r} is {type(obj).__name__}, not an exception class"


# --------------------------------------------------------------------------- timing warnings


def _timing_warnings(parsed: conf.HorsiesSettings) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    beat, lease, stale = (
        parsed.HEARTBEAT_INTERVAL_MS,
        parsed.CLAIM_LEASE_MS,
        parsed.WORKER_STALE_AFTER_MS,
    )
    floor = HEARTBEATS_PER_LEASE * beat
    if lease <= floor:
        messages.append(
            CheckWarning(
                f"HORSIES['CLAIM_LEASE_MS'] ({lease}) is at most twice "
                f"HEARTBEAT_INTERVAL_MS ({beat}): one late heartbeat lets another worker "
                "re-claim a task that is still running.",
                hint=f"Set CLAIM_LEASE_MS above {floor} (e.g. 10 heartbeats).",
                id=_id("W001"),
            )
        )
    if stale <= floor:
        messages.append(
            CheckWarning(
                f"HORSIES['WORKER_STALE_AFTER_MS'] ({stale}) is at most "
                f"twice HEARTBEAT_INTERVAL_MS ({beat}): a worker that misses one heartbeat is "
                "declared dead and its tasks recovered while it still runs them.",
                hint=f"Set WORKER_STALE_AFTER_MS above {floor}.",
                id=_id("W002"),
            )
        )
    return messages
