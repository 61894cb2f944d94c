"""Loading the configuration: TOML (or a dict) validated into a :class:`Config`.

With no file, the embedded default applies (:mod:`milterfilters.config.embedded`); a file
starts from the option defaults. Each filter
has a top-level section named after it (``[gtube]``, ``[relay]``, ...) holding the common
keys (enabled, dry_run, on_error, timeout) and the filter's own options.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from milterfilters.config.embedded import EMBEDDED_DEFAULT_TOML, EMBEDDED_SOURCE
from milterfilters.config.registry import PluginError, available_filters
from milterfilters.config.sections import (
    ActionsSection,
    DnsSection,
    LoggingSection,
    MetricsSection,
    MilterSection,
    score_range,
)
from milterfilters.core.filter import COMMON_KEYS, Filter, FilterSettings
from milterfilters.core.schema import MAX_NESTING, ConfigError, build, check_nesting, convert, key_path


@dataclass(frozen=True)
class FilterSpec:
    """A filter as configured: its class, common settings and own options."""

    name: str
    cls: type[Filter]
    settings: FilterSettings
    options: Any


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    milter: MilterSection = dataclasses.field(default_factory=MilterSection)
    dns: DnsSection = dataclasses.field(default_factory=DnsSection)
    actions: ActionsSection = dataclasses.field(default_factory=ActionsSection)
    scores: Mapping[str, float] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    logging: LoggingSection = dataclasses.field(default_factory=LoggingSection)
    metrics: MetricsSection = dataclasses.field(default_factory=MetricsSection)
    filters: tuple[FilterSpec, ...] = ()
    source: str = EMBEDDED_SOURCE

    @property
    def enabled_filters(self) -> tuple[FilterSpec, ...]:
        return tuple(f for f in self.filters if f.settings.enabled)

    def weights(self) -> dict[str, float]:
        """Symbol weights: each filter's defaults, overridden by ``[scores]``."""
        out: dict[str, float] = {}
        for spec in self.filters:
            out.update(spec.cls.symbols)
        out.update(self.scores)
        return out

    def filter(self, name: str) -> FilterSpec:
        for spec in self.filters:
            if spec.name == name:
                return spec
        raise KeyError(name)


#: the configuration's own sections (everything else at the top level names a filter)
SECTIONS: dict[str, type] = {
    "milter": MilterSection,
    "dns": DnsSection,
    "actions": ActionsSection,
    "logging": LoggingSection,
    "metrics": MetricsSection,
}


def _build_filter(name: str, cls: type[Filter], data: Mapping[str, Any], source: str) -> FilterSpec:
    common = {k: v for k, v in data.items() if k in COMMON_KEYS}
    own = {k: v for k, v in data.items() if k not in COMMON_KEYS}
    if "enabled" not in common:
        common["enabled"] = cls.enabled_by_default
    if "on_error" not in common:
        common["on_error"] = cls.default_on_error
    settings = build(FilterSettings, common, key=name, source=source)
    try:
        options: Any = build(cls.Options, own, key=name, source=source)
    except ConfigError as e:
        if e.message.startswith("unknown key"):
            known = sorted(COMMON_KEYS | {f.name for f in dataclasses.fields(cls.Options)})
            raise ConfigError(
                f"unknown key (known keys: {', '.join(known)})", source=source, key=e.key
            ) from None
        raise
    return FilterSpec(name=name, cls=cls, settings=settings, options=options)


def _scores(value: Any, source: str) -> Mapping[str, float]:
    """``[scores]``: symbol weights, each a finite number within the score limit."""
    scores = {}
    for sym, weight in _table(value, "scores", source).items():
        key = key_path("scores", sym)
        scores[sym] = convert(float, weight, key=key, source=source)
        try:
            score_range(scores[sym])
        except ValueError as e:
            raise ConfigError(str(e), source=source, key=key) from None
    return MappingProxyType(scores)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a parsed TOML document into a :class:`Config`.

    Anything wrong raises :class:`ConfigError` naming the source and the key.
    """
    try:
        filters = available_filters()
    except PluginError as e:
        raise ConfigError(str(e), source=source) from e
    check_nesting(data, source=source)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name in SECTIONS:
            sections[name] = build(SECTIONS[name], _table(value, name, source), key=name, source=source)
        elif name == "scores":
            sections["scores"] = _scores(value, source)
        elif name in filters:
            pass
        else:
            known = sorted(set(SECTIONS) | {"scores"} | set(filters))
            raise ConfigError(
                f"unknown section (known sections: {', '.join(known)})",
                source=source,
                key=key_path("", name),
            )
    specs = tuple(
        _build_filter(name, cls, _table(data.get(name, {}), name, source), source)
        for name, cls in filters.items()
    )
    return Config(**sections, filters=specs, source=source)


def _table(value: Any, key: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a table, got {type(value).__name__}", source=source, key=key)
    return value


def _deepest_line(text: str) -> str:
    """Where a document nests too deeply for the parser: ``line N (key K)``, best effort."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.count("[") + line.count("{") > MAX_NESTING:
            key = line.partition("=")[0].strip() if "=" in line else ""
            return f"line {number}" + (f" (key {key})" if key else "")
    return "a value"


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", source=source) from e
    except RecursionError:
        where = _deepest_line(text)
        raise ConfigError(
            f"invalid TOML: {where} nests deeper than {MAX_NESTING} levels", source=source
        ) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a TOML file; ``None`` gives the embedded default."""
    if path is None:
        return config_from_dict(_parse_toml(EMBEDDED_DEFAULT_TOML, EMBEDDED_SOURCE), source=EMBEDDED_SOURCE)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read configuration: {e.strerror}", source=str(p)) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", source=str(p)) from e
    return config_from_dict(_parse_toml(text, str(p)), source=str(p))
