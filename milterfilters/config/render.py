"""``milterfilters config``: the effective configuration as commented TOML, every default
included, generated from the same definitions the loader validates against."""

from __future__ import annotations

import re
from typing import Any

from milterfilters.config.loader import SECTIONS, Config
from milterfilters.core.errors import one_line
from milterfilters.core.filter import FilterSettings
from milterfilters.core.schema import field_docs, to_plain

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped (TOML 1.0 §String)."""

    def escape(c: str) -> str:
        if c in _TOML_ESCAPES:
            return _TOML_ESCAPES[c]
        return f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else c

    return '"' + "".join(escape(c) for c in text) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _section_lines(name: str, obj: Any, cls: type) -> list[str]:
    lines = [f"[{name}]"]
    docs = field_docs(cls)
    for key, value in to_plain(obj).items():
        if docs.get(key):
            lines.append(f"# {docs[key]}")
        if value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return lines


def render_config(config: Config) -> str:
    """The effective configuration as commented TOML, every default included."""
    out = [f"# effective configuration from {one_line(config.source)}", ""]
    for name, cls in SECTIONS.items():
        out += _section_lines(name, getattr(config, name), cls) + [""]
    out.append("[scores]")
    out.append("# symbol weights: filters' defaults, overridden by this table")
    for sym, weight in sorted(config.weights().items()):
        out.append(f"{_toml_key(sym)} = {weight!r}")
    out.append("")
    for spec in config.filters:
        doc_line = (spec.cls.__doc__ or "").strip().splitlines()
        out.append(f"[{spec.name}]")
        if doc_line:
            out.append(f"# {doc_line[0]}")
        out += _section_lines(spec.name, spec.settings, FilterSettings)[1:]
        out += _section_lines(spec.name, spec.options, spec.cls.Options)[1:]
        out.append("")
    return "\n".join(out)
