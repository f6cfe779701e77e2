"""Task definitions and the rules a `@app.task` declaration must follow.

Every rule is checked when the decorator runs (module import), and a broken rule raises
`TaskDefinitionError` naming the task and the fix, so mistakes never reach a worker.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import TypeAdapter

from horsies_django import codec
from horsies_django.conf import DEFAULT_QUEUE, HorsiesSettings
from horsies_django.exceptions import TaskDefinitionError
from horsies_django.retry import RetryPolicy
from horsies_django.types import TaskResult, check_user_code

MIN_TIMEOUT_MS: Final = 1_000
# Parameters a workflow's engine fills (never sent): they take any annotation pydantic cannot
# validate, such as `WorkflowContext | None`.
ENGINE_FILLED_PARAMS: Final = frozenset({"workflow_ctx", "workflow_meta"})
# Task names with this prefix are reserved: a row named `django.tasks:shop.tasks.send_receipt`
# is a function of Django's own `django.tasks` API (enqueued through
# `horsies_django.backends.HorsiesBackend`), run by its module path (see `django_tasks/`).
DJANGO_TASK_PREFIX: Final = "django.tasks:"


@dataclass(frozen=True, slots=True)
class Param:
    """One keyword-only parameter of a task and the validator that rehydrates it."""

    name: str
    required: bool
    adapter: TypeAdapter[Any] | None
    declared: codec.Declared = codec.ANY_JSON  # what a send accepts for it
    annotation: Any = Any  # as declared (workflows compare it with an upstream's ok type)
    receives_result: bool = False  # `TaskResult[T, E]`: a workflow injects an upstream's result
    result_adapter: TypeAdapter[Any] | None = None  # validates that result's ok value as T


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """Everything the queue knows about a registered task."""

    name: str
    fn: Callable[..., Any]
    queue_name: str
    params: Mapping[str, Param]
    return_adapter: TypeAdapter[Any] | None
    retry_policy: RetryPolicy | None
    exception_mapper: Mapping[type[BaseException], str]
    default_unhandled_error_code: str | None
    timeout_ms: int | None
    ok_type: Any = Any  # the `T` of `-> TaskResult[T, TaskError]`
    # Derived once, read by every send.
    required_params: frozenset[str] = field(init=False, repr=False, compare=False)
    declared_types: Mapping[str, codec.Declared] = field(init=False, repr=False, compare=False)
    # Per parameter, the flat argument types stored without a walk (codec.encode_flat_arguments).
    flat_types: Mapping[str, frozenset[type]] = field(init=False, repr=False, compare=False)
    options_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        required = frozenset(p.name for p in self.params.values() if p.required)
        object.__setattr__(self, "required_params", required)
        declared = {p.name: p.declared for p in self.params.values()}
        object.__setattr__(self, "declared_types", declared)
        flat = {name: codec.flat_types(expected) for name, expected in declared.items()}
        object.__setattr__(self, "flat_types", flat)
        object.__setattr__(self, "options_json", codec.dumps(self.options_snapshot()))

    @property
    def max_retries(self) -> int:
        return self.retry_policy.max_retries if self.retry_policy else 0

    def options_snapshot(self) -> dict[str, Any]:
        """What is stored with each send: the policy the task will run with."""
        return {
            "retry_policy": self.retry_policy.to_stored() if self.retry_policy else None,
            "timeout_ms": self.timeout_ms,
            "module": getattr(self.fn, "__module__", None),  # named when a worker lacks it
        }


def build_definition(
    fn: Callable[..., Any],
    *,
    name: str,
    settings: HorsiesSettings,
    queue_name: str | None,
    retry_policy: RetryPolicy | None,
    exception_mapper: Mapping[type[BaseException], str] | None,
    default_unhandled_error_code: str | None,
    timeout_ms: int | None,
) -> TaskDefinition:
    """Check every registration rule and return the definition (or raise)."""
    where = f"task {name!r} ({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)})"
    _check_name(name, where)
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TaskDefinitionError(
            f"{where} is `async def`: task functions must be plain `def`; "
            "use send_async()/get_async() on the producer side for non-blocking I/O"
        )
    hints = _type_hints(fn, where)
    ok_type = _ok_type(hints, where)
    return TaskDefinition(
        name=name,
        fn=fn,
        queue_name=_check_queue(queue_name, settings, where),
        params=_params(fn, hints, where),
        return_adapter=_adapter(ok_type, where, "return type"),
        retry_policy=_check_policy(retry_policy, where),
        exception_mapper=_check_mapper(exception_mapper or {}, where),
        default_unhandled_error_code=(
            None
            if default_unhandled_error_code is None
            else _code(default_unhandled_error_code, where, "default_unhandled_error_code")
        ),
        timeout_ms=_check_timeout(timeout_ms, where),
        ok_type=ok_type,
    )


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise TaskDefinitionError(
            f"{where}: the task name must be a non-empty string of at most 255 characters, "
            'e.g. @app.task("process_order")'
        )
    if name.startswith(DJANGO_TASK_PREFIX):
        raise TaskDefinitionError(
            f"{where}: names starting with {DJANGO_TASK_PREFIX!r} are reserved for functions of "
            "Django's django.tasks API run through HorsiesBackend; choose another name"
        )


def _type_hints(fn: Callable[..., Any], where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as exc:
        raise TaskDefinitionError(
            f"{where}: its annotations cannot be resolved ({exc}); import the types they name "
            "at module level"
        ) from exc


def _params(fn: Callable[..., Any], hints: dict[str, Any], where: str) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            stars: dict[inspect._ParameterKind, str] = {
                inspect.Parameter.VAR_POSITIONAL: "*",
                inspect.Parameter.VAR_KEYWORD: "**",
            }
            kind = stars.get(p.kind, "") + p.name
            raise TaskDefinitionError(
                f"{where}: parameter {kind!r} is not keyword-only; arguments travel by name, "
                f"so declare every parameter after a bare `*`, e.g. `def f(*, {p.name}: ...)`"
            )
        annotation = hints.get(p.name, Any)
        adapter = (
            None
            if p.name in ENGINE_FILLED_PARAMS or receives_result(annotation)
            else _adapter(annotation, where, f"parameter {p.name!r}")
        )
        injected = receives_result(annotation)
        params[p.name] = Param(
            name=p.name,
            required=p.default is inspect.Parameter.empty,
            adapter=adapter,
            declared=codec.declared_type(annotation, adapter),
            annotation=annotation,
            receives_result=injected,
            result_adapter=_ok_adapter(annotation, where, p.name) if injected else None,
        )
    return params


def _ok_adapter(annotation: Any, where: str, name: str) -> TypeAdapter[Any] | None:
    """The validator of T in a `TaskResult[T, E]` (or `... | None`) parameter; None for Any."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if receives_result(a)]
        return _ok_adapter(inner[0], where, name) if inner else None
    args = typing.get_args(annotation)
    if not args or args[0] is Any:
        return None
    return _adapter(args[0], where, f"the ok type of parameter {name!r}")


def receives_result(annotation: Any) -> bool:
    """True for `TaskResult[T, E]` (or `... | None`): a workflow injects an upstream's result."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(receives_result(arg) for arg in typing.get_args(annotation))
    return annotation is TaskResult or typing.get_origin(annotation) is TaskResult


def _ok_type(hints: dict[str, Any], where: str) -> Any:
    if "return" not in hints:
        raise TaskDefinitionError(
            f"{where} has no return annotation: declare `-> TaskResult[YourType, TaskError]`"
        )
    annotation = hints["return"]
    if typing.get_origin(annotation) is not TaskResult and annotation is not TaskResult:
        raise TaskDefinitionError(
            f"{where} returns {annotation!r}: a task must be annotated "
            "`-> TaskResult[YourType, TaskError]` and return TaskResult(ok=...) or "
            "TaskResult(err=...)"
        )
    args = typing.get_args(annotation)
    return args[0] if args else Any


def _adapter(annotation: Any, where: str, what: str) -> TypeAdapter[Any] | None:
    try:
        return codec.adapter_for(annotation)
    except Exception as exc:
        raise TaskDefinitionError(
            f"{where}: the {what} {annotation!r} cannot be validated by pydantic ({exc}); "
            "use JSON types, pydantic models or dataclasses"
        ) from exc


def _check_queue(queue_name: str | None, settings: HorsiesSettings, where: str) -> str:
    problem = queue_problem(queue_name, settings)
    if problem:
        raise TaskDefinitionError(f"{where}: {problem}")
    return DEFAULT_QUEUE if settings.QUEUE_MODE == "DEFAULT" else str(queue_name)


def queue_problem(queue_name: str | None, settings: HorsiesSettings) -> str | None:
    """Why `queue_name` cannot be used in the settings' queue mode (None: it can)."""
    if settings.QUEUE_MODE == "DEFAULT":
        if queue_name not in (None, DEFAULT_QUEUE):
            return (
                f"queue_name={queue_name!r} needs HORSIES['QUEUE_MODE'] = 'CUSTOM' with "
                f"that queue in CUSTOM_QUEUES; in DEFAULT mode leave queue_name out"
            )
        return None
    names = [q.name for q in settings.queues]
    if queue_name is None:
        return f"QUEUE_MODE is 'CUSTOM', so give queue_name=, one of {names}"
    if queue_name not in names:
        return (
            f"queue_name={queue_name!r} is not in HORSIES['CUSTOM_QUEUES'] ({names}); "
            "add it there or pick one of those"
        )
    return None


def _check_policy(policy: object, where: str) -> RetryPolicy | None:
    if policy is None or isinstance(policy, RetryPolicy):
        return policy
    raise TaskDefinitionError(
        f"{where}: retry_policy must be a RetryPolicy, e.g. RetryPolicy.fixed([60, 300], "
        f"auto_retry_for=['TIMEOUT']); got {type(policy).__name__}"
    )


def _check_mapper(
    mapper: Mapping[type[BaseException], str], where: str
) -> dict[type[BaseException], str]:
    if not isinstance(mapper, Mapping):
        raise TaskDefinitionError(f"{where}: exception_mapper must be a dict {{ExcClass: 'CODE'}}")
    checked: dict[type[BaseException], str] = {}
    for exc_type, code in mapper.items():
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise TaskDefinitionError(
                f"{where}: exception_mapper key {exc_type!r} is not an exception class"
            )
        checked[exc_type] = _code(code, where, f"exception_mapper[{exc_type.__name__}]")
    return checked


def _code(code: object, where: str, what: str) -> str:
    try:
        return check_user_code(code, where=f"{where}: {what}")
    except ValueError as exc:
        raise TaskDefinitionError(str(exc)) from exc


def _check_timeout(timeout_ms: object, where: str) -> int | None:
    if timeout_ms is None:
        return None
    if (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or timeout_ms < MIN_TIMEOUT_MS
    ):
        raise TaskDefinitionError(
            f"{where}: timeout_ms={timeout_ms!r} must be an int >= {MIN_TIMEOUT_MS} "
            "(milliseconds, measured from dispatch); e.g. timeout_ms=30_000"
        )
    return timeout_ms
