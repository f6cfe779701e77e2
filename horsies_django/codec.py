"""Strict JSON for task arguments and results.

Whatever reaches PostgreSQL is plain JSON that `jsonb` stores and gives back unchanged: no NaN
or infinities, no floats it would return as integers, no ints Python cannot read back, no NUL
characters or lone surrogates, string keys only, at most `MAX_NESTING_DEPTH` levels, and no
more bytes than the caller's limit (checked while walking, before any JSON text is built).
Pydantic models and dataclasses travel in a small envelope naming their class, so the worker
can rebuild them as the declared type. A typed parameter's argument is validated against its
annotation first; a value of that type which is not JSON (a datetime, a set) is stored as the
JSON the worker's validation turns back into an equal value, or refused.

Longer than 400 lines on purpose: the encoder and the decoder of one format, each rule next to
its inverse, so a change to one side cannot miss the other.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
import reprlib
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any, Final, NoReturn

from pydantic import BaseModel, TypeAdapter, ValidationError

from horsies_django.exceptions import EncodingError
from horsies_django.types import JsonValue, TaskError, TaskResult

TYPE_KEY: Final = "__horsies_type__"
DATA_KEY: Final = "data"

# Lists, dicts, models and dataclasses nest at most this deep (a value's own list is level 1).
# Deeper values are almost always cycles or accidents; this keeps every recursive step (ours,
# json, pydantic's own limit of about 250) far from a RecursionError.
MAX_NESTING_DEPTH: Final = 64
# Python refuses to read back ints of more digits (sys.get_int_max_str_digits() by default).
MAX_INT_DIGITS: Final = 4_300
# From here on repr() writes floats with an exponent: PostgreSQL's numeric keeps the decimal
# value and gives it back as an integer (1e300 would come back as a different int).
MAX_EXACT_FLOAT: Final = 1e16

_INT_BOUND: Final = 10**MAX_INT_DIGITS
_FORBIDDEN_CHARS: Final = re.compile("[\x00\ud800-\udfff]")
_PRIMITIVES: Final = (str, bool, int, float, type(None))
# Pydantic errors quoted in a refusal, and how much of the offending input they show.
MAX_QUOTED_ERRORS: Final = 3
_BRIEF: Final = reprlib.Repr(maxstring=60, maxother=60, maxlist=4, maxdict=4, maxlevel=2)


class TooLargeError(EncodingError):
    """The JSON text would exceed `limit` bytes; `size` is exact, or a lower bound if not."""

    def __init__(self, *, size: int, limit: int, exact: bool, path: str = "") -> None:
        self.size = size
        self.limit = limit
        self.exact = exact
        where = f" (past the limit at {path})" if path else ""
        super().__init__(f"{self.size_text} of JSON, over {limit:,} bytes{where}", path=path)

    @property
    def size_text(self) -> str:
        """`1,234 bytes`, or `at least 1,234 bytes` when encoding stopped early."""
        return f"{'' if self.exact else 'at least '}{self.size:,} bytes"


# One encoder for every call: json.dumps() with options builds a new one each time.
_ENCODER: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON text of an already-encoded value."""
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


# --------------------------------------------------------------------------- encoding


def encode(value: Any, path: str = "value", *, limit: int | None = None) -> Any:
    """Turn `value` into plain JSON data, wrapping models and dataclasses in envelopes.

    Raises `EncodingError` naming the offending path (e.g. `order.items[2]`), and
    `TooLargeError` as soon as its strings alone pass `limit` bytes.
    """
    return _Walk(limit).value(value, path, 0)


@dataclass(frozen=True, slots=True)
class Declared:
    """What a parameter's annotation accepts at send (built once per task definition).

    `adapter` None: any JSON value, checked by the codec alone (`Any`, `JsonValue`, no
    annotation). `as_is`: value types stored without pydantic (the annotation's JSON scalars,
    models and dataclasses), so the common send skips validation.
    """

    adapter: TypeAdapter[Any] | None
    as_is: frozenset[type]
    label: str


ANY_JSON: Final = Declared(None, frozenset(), "any JSON value")
_JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_STDLIB_PREFIX: Final = re.compile(r"(?<![\w.])(?:typing|builtins|datetime|decimal|uuid|enum)\.")


def declared_type(annotation: Any, adapter: TypeAdapter[Any] | None) -> Declared:
    """The send-side view of a parameter annotated `annotation` (validated by `adapter`)."""
    if adapter is None or annotation is JsonValue:
        return ANY_JSON
    origin = typing.get_origin(annotation)
    members = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else ()
    as_is = frozenset(t for t in members or (annotation,) if _stored_as_is(t))
    return Declared(adapter, as_is, type_label(annotation))


def _stored_as_is(annotation: Any) -> bool:
    """A value of exactly this class is stored as it is: it is its own JSON or envelope."""
    if annotation is None:
        return True
    if not isinstance(annotation, type):
        return False
    return (
        annotation in _JSON_SCALARS
        or issubclass(annotation, BaseModel)
        or dataclasses.is_dataclass(annotation)
    )


def type_label(annotation: Any) -> str:
    """`int`, `list[Order]`, `datetime | None`: an annotation as messages name it."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return _STDLIB_PREFIX.sub("", str(annotation))


def encode_arguments(
    kwargs: Mapping[str, Any], limit: int, declared: Mapping[str, Declared] | None = None
) -> str:
    """The JSON text of a send's keyword arguments, at most `limit` bytes (UTF-8).

    Each argument is checked against its parameter's `Declared` type when given (else as any
    JSON value); `EncodingError` names the argument, the type and the problem.
    """
    walk = _Walk(limit)
    declared = declared or {}
    encoded: dict[str, Any] = {}
    for name, value in kwargs.items():
        expected = declared.get(name, ANY_JSON)
        if expected.adapter is None or type(value) in expected.as_is:
            encoded[name] = walk.value(value, name, 0)
        else:
            encoded[name] = walk.typed(value, name, expected)
    text = dumps(encoded)
    check_size(text, limit)
    return text


# The argument types the common send passes (exact classes, no subclasses): a value of one is its
# own JSON, so a parameter that stores it as it is needs no walk and no validation.
FLAT_TYPES: Final[frozenset[type]] = frozenset({str, int, bool, type(None)})


# json's C encoder, built once: `dumps()` builds one per call, which costs more than encoding a
# flat dict. Without cycle checks (a dict of flat values has no cycle); None without the C part.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_FLAT_ENCODER: Final = _c_make_encoder and _c_make_encoder(
    None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, False
)


def flat_types(expected: Declared) -> frozenset[type]:
    """The `FLAT_TYPES` a parameter of type `expected` stores as they are."""
    return FLAT_TYPES if expected.adapter is None else FLAT_TYPES & expected.as_is


def encode_flat_arguments(
    kwargs: dict[str, Any], flat: Mapping[str, frozenset[type]], limit: int
) -> str | None:
    """The JSON text `encode_arguments` would give, when every argument is a flat value its
    parameter (a key of `flat`) stores as it is and the text is storable; else None, and
    `encode_arguments` decides (and words the refusal). A cheap first try for every send."""
    chars = 0  # of the strings: past the limit, nothing is scanned or built
    for name, value in kwargs.items():
        kind = type(value)
        if kind not in flat.get(name, ()):
            return None
        if kind is str:
            chars += len(value)
            if chars > limit or _FORBIDDEN_CHARS.search(value) is not None:
                return None
        elif kind is int and not -_INT_BOUND < value < _INT_BOUND:
            return None
    text = "".join(_FLAT_ENCODER(kwargs, 0)) if _FLAT_ENCODER else dumps(kwargs)
    chars = len(text)
    if chars > limit or (4 * chars > limit and not text.isascii()):
        return None  # maybe too large: encode_arguments measures it exactly
    return text


def check_size(text: str, limit: int) -> None:
    """Raise `TooLargeError` if `text` is more than `limit` bytes in UTF-8.

    Cheap for the usual case: `len()` and `isascii()` are O(1); only non-ASCII text that might
    fit is encoded to count its bytes, and that text is at most `limit` characters.
    """
    chars = len(text)
    if chars > limit:
        raise TooLargeError(size=chars, limit=limit, exact=text.isascii())
    if text.isascii() or 4 * chars <= limit:
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise TooLargeError(size=size, limit=limit, exact=True)


def check_text(text: str, path: str) -> None:
    """Raise `EncodingError` if `text` holds a character PostgreSQL cannot store."""
    match = _FORBIDDEN_CHARS.search(text)
    if match:
        char = "a NUL character" if match.group() == "\x00" else "a lone surrogate"
        raise EncodingError(f"{path} contains {char}, which PostgreSQL cannot store", path=path)


# Where a value sits, kept as a chain and spelled out only for a message (so no path string is
# built per item): an argument's name, then (parent, index) for a list item, (parent, key) for
# a dict value, and (parent, None) for a dict key itself.
type Where = str | tuple[Where, int | str | None]


def spell(where: Where) -> str:
    """`order.items[2]`, `order key`: a `Where` as messages name it."""
    steps: list[str] = []
    while isinstance(where, tuple):
        where, step = where
        if isinstance(step, int):
            steps.append(f"[{step}]")
        else:
            steps.append(" key" if step is None else f".{step}")
    return where + "".join(reversed(steps))


class _Walk:
    """One encoding pass: checks every value, counts string bytes against the limit."""

    __slots__ = ("limit", "size")

    def __init__(self, limit: int | None) -> None:
        self.limit = sys.maxsize if limit is None else limit
        self.size = 0  # characters of strings and keys so far: a lower bound of the JSON size

    def value(self, value: Any, where: Where, depth: int) -> Any:
        kind = type(value)
        if kind is str:  # the common cases first: every send takes this path
            self.text(value, where)
            return value
        if kind is int:
            if not -_INT_BOUND < value < _INT_BOUND:
                _refuse_int(where)
            return value
        if isinstance(value, _PRIMITIVES):
            self.primitive(value, where)
            return value
        if depth >= MAX_NESTING_DEPTH:
            _refuse_depth(where, "lists, dicts, models or dataclasses ")
        if isinstance(value, list | tuple):
            return [self.value(item, (where, i), depth + 1) for i, item in enumerate(value)]
        if kind is dict or isinstance(value, Mapping):
            return self.mapping(value, where, depth)
        if isinstance(value, BaseModel) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)
        ):
            return self.envelope(value, where, depth)
        path = spell(where)
        raise EncodingError(
            f"{path} is a {type(value).__name__}, which is not JSON: pass JSON values, "
            "pydantic models or dataclasses (e.g. str(obj) or obj.id instead of the object)",
            path=path,
        )

    def typed(self, value: Any, name: str, expected: Declared) -> Any:
        """Validate an argument against its declared type, then encode what was validated.

        A validated value that is not JSON (a datetime, a set, an enum) is stored as its JSON
        form when the declared type reads that form back as an equal value; else it is refused.
        """
        adapter = expected.adapter
        assert adapter is not None
        try:
            valid = adapter.validate_python(value)
        except ValidationError as exc:
            raise EncodingError(_mismatch(name, value, expected, exc), path=name) from exc
        size_before = self.size
        try:
            return self.value(valid, name, 0)
        except TooLargeError:
            raise
        except EncodingError:
            data = _json_form(adapter, valid)
            if data is _NO_JSON_FORM:
                raise
            self.size = size_before  # the refused walk counted strings that count again
        return self.value(data, name, 0)

    def primitive(self, value: str | bool | int | float | None, where: Where) -> None:
        if isinstance(value, str):
            self.text(value, where)
        elif isinstance(value, float):
            if not -MAX_EXACT_FLOAT < value < MAX_EXACT_FLOAT:
                _refuse_float(value, where)
        elif isinstance(value, int) and not -_INT_BOUND < value < _INT_BOUND:
            _refuse_int(where)

    def text(self, text: str, where: Where) -> None:
        self.size += len(text)
        if self.size > self.limit:  # before scanning it: a huge string is refused at once
            path = spell(where)
            raise TooLargeError(size=self.size, limit=self.limit, exact=False, path=path)
        if _FORBIDDEN_CHARS.search(text) is not None:
            check_text(text, spell(where))

    def mapping(self, value: Mapping[Any, Any], where: Where, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                path = spell(where)
                raise EncodingError(
                    f"{path} has a non-string key {key!r:.100}: JSON keys are strings", path=path
                )
            if key == TYPE_KEY:
                path = spell(where)
                raise EncodingError(f"{path} uses the reserved key {TYPE_KEY!r}", path=path)
            self.text(key, (where, None))
            out[key] = self.value(item, (where, key), depth + 1)
        return out

    def envelope(self, value: Any, where: Where, depth: int) -> dict[str, Any]:
        cls: type = type(value)
        try:
            if isinstance(value, BaseModel):
                data = value.model_dump(mode="json")
            else:
                data = _adapter(cls).dump_python(value, mode="json")
        except (ValueError, TypeError, RuntimeError) as exc:  # pydantic's errors, cycles
            path = spell(where)
            raise EncodingError(
                f"{path} is a {cls.__qualname__} that pydantic cannot turn into JSON: {exc}",
                path=path,
            ) from exc
        self.plain(data, where, depth + 1)
        return {TYPE_KEY: type_path(cls, spell(where)), DATA_KEY: data}

    def plain(self, data: Any, where: Where, depth: int) -> None:
        """Check JSON data made by pydantic, as `value` would (it is stored as is)."""
        if isinstance(data, _PRIMITIVES):
            self.primitive(data, where)
            return
        if depth > MAX_NESTING_DEPTH:
            _refuse_depth(where, "")
        if isinstance(data, list):
            for i, item in enumerate(data):
                self.plain(item, (where, i), depth + 1)
        elif isinstance(data, dict):
            for key, item in data.items():
                self.text(key, (where, None))
                self.plain(item, (where, key), depth + 1)


_NO_JSON_FORM: Final = object()


def _json_form(adapter: TypeAdapter[Any], valid: Any) -> Any:
    """`valid` dumped to JSON by its declared type, if that JSON validates back to an equal
    value (what the worker will receive); else `_NO_JSON_FORM`."""
    try:
        data = adapter.dump_python(valid, mode="json")
        same = bool(adapter.validate_python(data) == valid)
    except Exception:  # pydantic's errors, or user objects whose __eq__ misbehaves
        return _NO_JSON_FORM
    return data if same else _NO_JSON_FORM


def _mismatch(name: str, value: Any, expected: Declared, exc: ValidationError) -> str:
    """`order_id must be int, not 'abc' (str): Input should be a valid integer, ...`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    details = [_error_text(name, err["loc"], err["msg"]) for err in errors[:MAX_QUOTED_ERRORS]]
    if len(errors) > MAX_QUOTED_ERRORS:
        details.append(f"{len(errors) - MAX_QUOTED_ERRORS} more")
    return (
        f"{name} must be {expected.label}, not {_brief(value)} ({type(value).__qualname__}): "
        + "; ".join(details)
    )


def _error_text(name: str, loc: tuple[int | str, ...], message: str) -> str:
    where: Where = name
    for step in loc:
        where = (where, step)
    return f"{spell(where)}: {message}" if loc else message


def _brief(value: Any) -> str:
    """A short repr of user input (a repr that raises is replaced by the type's name)."""
    try:
        return _BRIEF.repr(value)
    except Exception:
        return f"a {type(value).__qualname__}"


def _refuse_depth(where: Where, what: str) -> NoReturn:
    path = spell(where)
    raise EncodingError(
        f"{_short(path)} nests {what}more than {MAX_NESTING_DEPTH} levels deep (or contains "
        "itself): flatten it",
        path=path,
    )


def _refuse_int(where: Where) -> NoReturn:
    path = spell(where)
    raise EncodingError(
        f"{path} is an int of more than {MAX_INT_DIGITS:,} digits, which Python cannot read back "
        "from JSON: send it as a string (str(n))",
        path=path,
    )


def _refuse_float(value: float, where: Where) -> NoReturn:
    path = spell(where)
    if not math.isfinite(value):
        raise EncodingError(f"{path} is {value!r}: JSON has no NaN or infinity", path=path)
    raise EncodingError(
        f"{path} is {value!r}: PostgreSQL gives floats of magnitude {MAX_EXACT_FLOAT:g} or more "
        "back as integers, so it would not arrive unchanged: send int(value) or str(value) "
        "instead (a float-typed parameter or return type turns the int back into this float)",
        path=path,
    )


def _short(path: str) -> str:
    """A path of a deep value, shortened for a message (`EncodingError.path` keeps it all)."""
    return path if len(path) <= 80 else f"{path[:40]}...{path[-30:]}"


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


def encode_result(result: TaskResult[Any, TaskError], limit: int | None = None) -> str:
    """JSON text stored in `horsies_task.result`, at most `limit` bytes (UTF-8) when given."""
    walk = _Walk(limit)
    if result.is_ok():
        text = dumps({"ok": walk.value(result.ok_value, "result", 0)})
    else:
        text = dumps({"err": walk.value(result.err_value.to_stored(), "error", 0)})
    if limit is not None:
        check_size(text, limit)
    return text


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
