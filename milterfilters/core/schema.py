"""Validate plain TOML data into frozen dataclasses, naming the file and key path on error.

A section is a dataclass; each field's type hint says what the key takes and
``field(metadata={"doc": ...})`` says what it is for. Unknown keys are errors.
Supported types: str, int, float, bool, Literal[...], X | None, list[X], tuple[X, ...],
dict[str, X] and nested dataclasses.

Numbers are strict everywhere: a float is finite (TOML's ``nan`` and ``inf`` are refused) and an
integer fits in 64 bits. A field may add its own rule with ``doc(..., check=...)`` (see
:func:`in_range`, :func:`reply_text`, :func:`authserv_id`); :func:`check_nesting` bounds how deep
a document nests. Every refusal is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from milterfilters.core.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "authserv_id",
    "build",
    "check_nesting",
    "doc",
    "field_docs",
    "in_range",
    "key_path",
    "one_line_text",
    "reply_text",
    "to_plain",
    "toml_quote",
]

#: A field's own rule: raises ValueError (with the reason) when the value is refused.
Check = Callable[[Any], None]

#: tables and lists nested deeper than this are refused (the schema itself needs 4)
MAX_NESTING = 16
#: integers are 64-bit, as TOML says; floats are finite
_INT_BOUND = 1 << 63
#: longest SMTP reply text (what :class:`~milterfilters.core.verdict.SmtpReply` accepts)
MAX_REPLY_TEXT = 400

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlevel = 3


def doc(text: str, default: Any = dataclasses.MISSING, *, check: Check | None = None, **kw: Any) -> Any:
    """A dataclass field with a documentation string (shown by ``milterfilters config``) and,
    optionally, a ``check`` run on the value at load (e.g. ``check=in_range(0, 1)``)."""
    metadata = {"doc": text, "check": check} if check else {"doc": text}
    if "default_factory" in kw:
        return dataclasses.field(metadata=metadata, **kw)
    return dataclasses.field(default=default, metadata=metadata, **kw)


def in_range(low: float | None = None, high: float | None = None, *, above: bool = False) -> Check:
    """A check that a number lies in ``[low, high]`` (``(low, high]`` with ``above=True``)."""

    def check(value: Any) -> None:
        if value is None:
            return
        too_low = low is not None and (value <= low if above else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else (f"> {low:g}" if above else f">= {low:g}")
            hi = "" if high is None else f"<= {high:g}"
            raise ValueError(f"must be {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")

    return check


def one_line_text(value: str) -> None:
    """A check that a string holds no control character (CR, LF, NUL, ...)."""
    bad = next((c for c in value if not c.isprintable() and c != " "), None)
    if bad is not None:
        raise ValueError(f"must be one line of printable text, found {bad!r}")


def reply_text(value: str) -> None:
    """A check for text that becomes an SMTP reply: printable ASCII, at most 400 characters."""
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        raise ValueError(f"an SMTP reply text must be printable ASCII, found {bad!r}")
    if len(value) > MAX_REPLY_TEXT:
        raise ValueError(f"an SMTP reply text must be at most {MAX_REPLY_TEXT} characters, got {len(value)}")


#: RFC 2045 token (RFC 8601 §2.2 authserv-id = value = token / quoted-string)
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def authserv_id(value: str) -> None:
    """A check for an RFC 8601 authserv-id written as a token (a host name fits); empty is allowed."""
    if value and (len(value) > 255 or not _TOKEN.fullmatch(value)):
        raise ValueError(
            f"must be an RFC 8601 authserv-id token such as mx.example.org (at most 255 "
            f"characters, no spaces, quotes or ()<>@,;:\\/[]?=), got {_short.repr(value)}"
        )


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_quote(text: str) -> str:
    """``text`` as a TOML basic string: quote, backslash and control characters escaped."""

    def escape(c: str) -> str:
        if c in _TOML_ESCAPES:
            return _TOML_ESCAPES[c]
        return f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else c

    return '"' + "".join(escape(c) for c in text) + '"'


def key_path(parent: str, name: object) -> str:
    """``parent.name`` as TOML writes it: a name that is not a bare key is quoted (``scores."a b"``)."""
    text = str(name)
    part = text if _BARE_KEY.fullmatch(text) else toml_quote(text)
    return f"{parent}.{part}" if parent else part


def check_nesting(data: Any, *, source: str = "", limit: int = MAX_NESTING) -> None:
    """Refuse a document whose tables and lists nest deeper than ``limit`` (iteratively, so a
    hostile document cannot exhaust the stack), naming the first key that does."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        key, value, depth = stack.pop()
        if isinstance(value, Mapping):
            children = [(key_path(key, k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        if depth >= limit:
            raise ConfigError(f"tables and lists nest deeper than {limit} levels", source=source, key=key)
        stack.extend((k, v, depth + 1) for k, v in children)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "nothing"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin in (dict, Mapping):
        return f"a table of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def convert(tp: Any, value: Any, *, key: str, source: str) -> Any:
    """Check ``value`` against the type ``tp`` and convert it (lists become tuples)."""
    origin = get_origin(tp)

    def fail(expected: str = "") -> ConfigError:
        what = expected or _type_name(tp)
        return ConfigError(f"expected {what}, got {_short.repr(value)}", source=source, key=key)

    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise fail()
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        choices = [a for a in args if a is not type(None)]
        if len(choices) == 1:  # X | None: X's own reason
            return convert(choices[0], value, key=key, source=source)
        for arg in choices:
            try:
                return convert(arg, value, key=key, source=source)
            except ConfigError:
                continue
        raise fail()
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        item = get_args(tp)[0]
        return tuple(convert(item, v, key=f"{key}[{i}]", source=source) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        item = get_args(tp)[1]
        return types.MappingProxyType(
            {str(k): convert(item, v, key=key_path(key, k), source=source) for k, v in value.items()}
        )
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise fail()
        return build(tp, value, key=key, source=source)
    if tp is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        if not -_INT_BOUND <= value < _INT_BOUND:
            raise fail("a 64-bit integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        if isinstance(value, int) and not -_INT_BOUND <= value < _INT_BOUND:
            raise fail("a finite number")
        if not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail()
        return value
    raise ConfigError(f"unsupported type {tp!r} in schema", source=source, key=key)


def build(cls: type[T], data: Mapping[str, Any], *, key: str = "", source: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError.

    After construction, a ``validate()`` method on the dataclass (if any) may raise
    ``ValueError``; the message is reported with the section's key path.
    """
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        path = key_path(key, name)
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"unknown key (known keys: {known})", source=source, key=path)
        kwargs[name] = convert(hints[name], value, key=path, source=source)
        _run_check(fields[name], kwargs[name], key=path, source=source)
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and (f.default_factory is dataclasses.MISSING)
        ):
            path = key_path(key, name)
            raise ConfigError("required key is missing", source=source, key=path)
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e), source=source, key=key) from None
    return obj


def _run_check(f: dataclasses.Field[Any], value: Any, *, key: str, source: str) -> None:
    check = f.metadata.get("check")
    if check is None:
        return
    try:
        check(value)
    except ValueError as e:
        raise ConfigError(str(e), source=source, key=key) from None


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists (for printing as TOML or JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def field_docs(cls: type) -> dict[str, str]:
    """The ``doc`` metadata of each field of a dataclass."""
    return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}
