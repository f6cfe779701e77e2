"""Strict JSON for task arguments and results.

Whatever reaches PostgreSQL is plain JSON that `jsonb` accepts: no NaN or infinities, no NUL
characters, no lone surrogates, string keys only. Pydantic models and dataclasses travel in a
small envelope naming their class, so the worker can rebuild them as the declared type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter

from horsies_django.exceptions import EncodingError
from horsies_django.types import TaskError, TaskResult

TYPE_KEY: Final = "__horsies_type__"
DATA_KEY: Final = "data"

_FORBIDDEN_CHARS: Final = re.compile("[\x00\ud800-\udfff]")
_PRIMITIVES: Final = (bool, int, str, type(None))


def dumps(value: Any) -> str:
    """Compact JSON text of an already-encoded value."""
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    return json.loads(text)


# --------------------------------------------------------------------------- encoding


def encode(value: Any, path: str = "value") -> Any:
    """Turn `value` into plain JSON data, wrapping models and dataclasses in envelopes.

    Raises `EncodingError` naming the offending path (e.g. `order.items[2]`).
    """
    if isinstance(value, str):
        _check_text(value, path)
        return value
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodingError(f"{path} is {value!r}: JSON has no NaN or infinity", path=path)
        return value
    if isinstance(value, list | tuple):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return _encode_mapping(value, path)
    if isinstance(value, BaseModel):
        return _envelope(type(value), value.model_dump(mode="json"), path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = _adapter(type(value)).dump_python(value, mode="json")
        return _envelope(type(value), data, path)
    raise EncodingError(
        f"{path} is a {type(value).__name__}, which is not JSON: pass JSON values, "
        "pydantic models or dataclasses (e.g. str(obj) or obj.id instead of the object)",
        path=path,
    )


def _encode_mapping(value: Mapping[Any, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise EncodingError(
                f"{path} has a non-string key {key!r}: JSON keys are strings", path=path
            )
        if key == TYPE_KEY:
            raise EncodingError(f"{path} uses the reserved key {TYPE_KEY!r}", path=path)
        _check_text(key, f"{path} key")
        out[key] = encode(item, f"{path}.{key}")
    return out


def _envelope(cls: type, data: Any, path: str) -> dict[str, Any]:
    _check_strings(data, path)
    return {TYPE_KEY: type_path(cls, path), DATA_KEY: data}


def _check_text(text: str, path: str) -> None:
    match = _FORBIDDEN_CHARS.search(text)
    if match:
        char = "a NUL character" if match.group() == "\x00" else "a lone surrogate"
        raise EncodingError(f"{path} contains {char}, which PostgreSQL cannot store", path=path)


def _check_strings(data: Any, path: str) -> None:
    if isinstance(data, str):
        _check_text(data, path)
    elif isinstance(data, float) and not math.isfinite(data):
        raise EncodingError(f"{path} holds {data!r}: JSON has no NaN or infinity", path=path)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _check_strings(item, f"{path}[{i}]")
    elif isinstance(data, dict):
        for key, item in data.items():
            _check_text(key, f"{path} key")
            _check_strings(item, f"{path}.{key}")


def type_path(cls: type, path: str = "value") -> str:
    """`module:QualName` of a class that a worker can import, or an `EncodingError`."""
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise EncodingError(
            f"{path} is a {qualname} defined in {module if module == '__main__' else 'a function'}:"
            " define it at module level in an importable module so workers can rebuild it",
            path=path,
        )
    return f"{module}:{qualname}"


# --------------------------------------------------------------------------- decoding


def decode(data: Any) -> Any:
    """Rebuild envelopes in decoded JSON data into their classes."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        type_name = data.get(TYPE_KEY)
        if isinstance(type_name, str):
            return _adapter(import_type(type_name)).validate_python(data.get(DATA_KEY))
        return {key: decode(item) for key, item in data.items()}
    return data


@lru_cache(maxsize=512)
def import_type(type_name: str) -> type:
    module_name, _, qualname = type_name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{type_name} is not a class")
    return obj


@lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def adapter_for(annotation: Any) -> TypeAdapter[Any] | None:
    """A cached validator for `annotation`, or None when anything is accepted."""
    if annotation is Any or annotation is object:
        return None
    try:
        return _adapter(annotation)
    except TypeError:  # unhashable annotation (rare): build uncached
        return TypeAdapter(annotation)


def rehydrate(value: Any, adapter: TypeAdapter[Any] | None) -> Any:
    """Decode envelopes, then validate against the declared type (pydantic errors propagate)."""
    value = decode(value)
    return value if adapter is None else adapter.validate_python(value)


# --------------------------------------------------------------------------- results


def encode_result(result: TaskResult[Any, TaskError]) -> str:
    """JSON text stored in `horsies_task.result`."""
    if result.is_ok():
        return dumps({"ok": encode(result.ok_value, "result")})
    return dumps({"err": encode(result.err_value.to_stored(), "error")})


def decode_result(stored: Any, adapter: TypeAdapter[Any] | None) -> TaskResult[Any, TaskError]:
    """Rebuild a stored result; raises (ValueError / pydantic errors) when it no longer fits."""
    if isinstance(stored, str | bytes):
        stored = loads(stored)
    if not isinstance(stored, dict) or len(stored) != 1:
        raise ValueError(f"stored result has an unknown shape: {stored!r:.200}")
    if "ok" in stored:
        return TaskResult(ok=rehydrate(stored["ok"], adapter))
    if "err" in stored and isinstance(stored["err"], dict):
        return TaskResult(err=TaskError.from_stored(stored["err"]))
    raise ValueError(f"stored result has an unknown shape: {stored!r:.200}")


# --------------------------------------------------------------------------- identity


def enqueue_sha(
    *,
    task_id: str,
    task_name: str,
    queue_name: str,
    priority: int,
    kwargs_json: str,
    delay_seconds: float | None,
    good_until: datetime | None,
) -> str:
    """SHA-256 over everything a send stores, so a replay can prove it carries the same payload."""
    parts = (
        task_id,
        task_name,
        queue_name,
        str(priority),
        kwargs_json,
        "" if delay_seconds is None else repr(float(delay_seconds)),
        "" if good_until is None else good_until.isoformat(),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
