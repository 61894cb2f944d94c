"""Validate plain TOML data into frozen dataclasses, naming the file and key path on error.

A section is a dataclass; each field's type hint says what the key takes and
``field(metadata={"doc": ...})`` says what it is for. Unknown keys are errors.
Supported types: str, int, float, bool, Literal[...], X | None, list[X], tuple[X, ...],
dict[str, X] and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from milterfilters.core.errors import ConfigError

T = TypeVar("T")

__all__ = ["ConfigError", "build", "doc", "field_docs", "to_plain"]


def doc(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field with a documentation string (shown by ``milterfilters config``)."""
    if "default_factory" in kw:
        return dataclasses.field(metadata={"doc": text}, **kw)
    return dataclasses.field(default=default, metadata={"doc": text}, **kw)


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

    def fail() -> ConfigError:
        return ConfigError(f"expected {_type_name(tp)}, got {value!r}", source=source, key=key)

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
        for arg in args:
            if arg is type(None):
                continue
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
            {str(k): convert(item, v, key=f"{key}.{k}", source=source) for k, v in value.items()}
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
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
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
        path = f"{key}.{name}" if key else name
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"unknown key (known keys: {known})", source=source, key=path)
        kwargs[name] = convert(hints[name], value, key=path, source=source)
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and (f.default_factory is dataclasses.MISSING)
        ):
            path = f"{key}.{name}" if key else name
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
