"""``milterfilters config``: the effective configuration as commented TOML, every default
included, generated from the same definitions the loader validates against."""

from __future__ import annotations

from typing import Any

from milterfilters.config.loader import SECTIONS, Config
from milterfilters.core.errors import one_line
from milterfilters.core.filter import FilterSettings
from milterfilters.core.schema import field_docs, key_path, to_plain, toml_quote


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key_path('', k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
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
        out.append(f"{key_path('', sym)} = {weight!r}")
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
