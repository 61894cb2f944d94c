"""Configuration: TOML validated into typed objects at start-up.

With no file, the defaults below are the configuration (the embedded default). Each filter
has a top-level section named after it (``[gtube]``, ``[relay]``, ...) holding the common
keys (enabled, dry_run, on_error, timeout) and the filter's own options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from milterfilters.filters.base import COMMON_KEYS, Filter, FilterSettings
from milterfilters.filters.registry import PluginError, available_filters
from milterfilters.schema import ConfigError, build, doc, field_docs, to_plain


@dataclass(frozen=True)
class MilterSection:
    """How the milter listens and talks to the MTA."""

    socket: str = doc(
        "where to listen: unix:/path, inet:HOST:PORT (Postfix style) or inet:PORT@HOST "
        "(libmilter style); unix sockets are fastest",
        "inet:127.0.0.1:8899",
    )
    socket_mode: str = doc("permissions of a unix socket (octal)", "0660")
    socket_group: str = doc("group of a unix socket (e.g. postfix); empty keeps the default", "")
    authserv_id: str = doc("authserv-id in Authentication-Results; empty means this host's name", "")
    name: str = doc("milter name (Sendmail's INPUT_MAIL_FILTER name)", "milterfilters")
    timeout: int = doc("seconds to wait for the MTA before dropping a milter connection", 600)
    max_body_bytes: int = doc(
        "body bytes kept for content filters; the rest is counted, not stored", 10 * 1024 * 1024
    )
    stop_timeout: float = doc("seconds to wait for connections to finish on SIGTERM", 10.0)

    def validate(self) -> None:
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            raise ValueError(f"socket_mode must be octal like 0660, got {self.socket_mode!r}") from None
        if not 0 <= mode <= 0o777:
            raise ValueError("socket_mode must be between 0000 and 0777")
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        from milterfilters.milter.socketspec import parse_socket_spec

        parse_socket_spec(self.socket)

    @property
    def effective_authserv_id(self) -> str:
        return self.authserv_id or socket.getfqdn()


@dataclass(frozen=True)
class DnsSection:
    """The resolver shared by SPF, DKIM and DMARC."""

    nameservers: tuple[str, ...] = doc(
        "servers to ask, as host or host:port; empty uses the system resolver",
        default_factory=tuple,
    )
    timeout: float = doc("seconds per DNS query, and per message for each filter's checks", 5.0)
    cache_size: int = doc("answers kept in the TTL cache (negative answers included); 0 = no cache", 10000)
    lookup_budget: int = doc("DNS lookups one check may make (cache hits count) before temperror", 250)

    def validate(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.cache_size < 0:
            raise ValueError("cache_size must not be negative")
        if self.lookup_budget < 1:
            raise ValueError("lookup_budget must be at least 1")
        from milterfilters.dns.resolver import parse_nameserver

        for spec in self.nameservers:
            parse_nameserver(spec)


@dataclass(frozen=True)
class ActionsSection:
    """Score thresholds that turn the total score into an action."""

    tag: float | None = doc("score at which the message is tagged (headers, subject prefix)", 6.0)
    quarantine: float | None = doc("score at which the message is quarantined at the MTA", None)
    reject: float | None = doc("score at which the message is rejected", 15.0)
    subject_prefix: str = doc("prefix for the Subject of tagged mail, e.g. [SPAM]", "")
    status_headers: bool = doc(
        "add X-Milterfilters-Score/-Symbols (X-Spam-Flag on tagged mail) to accepted mail", True
    )
    reject_text: str = doc("text of the reply when the score rejects", "Message rejected as spam")

    def validate(self) -> None:
        ordered = [t for t in (self.tag, self.quarantine, self.reject) if t is not None]
        if ordered != sorted(ordered):
            raise ValueError("thresholds must satisfy tag <= quarantine <= reject")
        if any(c in self.subject_prefix for c in "\r\n"):
            raise ValueError("subject_prefix must be one line")


@dataclass(frozen=True)
class LoggingSection:
    """Log output."""

    level: Literal["debug", "info", "warning", "error"] = doc("log level", "info")
    format: Literal["text", "json"] = doc("one line per decision, as key=value text or JSON", "text")


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
    filters: tuple[FilterSpec, ...] = ()
    source: str = "<embedded default>"

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


_SECTIONS: dict[str, type] = {
    "milter": MilterSection,
    "dns": DnsSection,
    "actions": ActionsSection,
    "logging": LoggingSection,
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


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    try:
        filters = available_filters()
    except PluginError as e:
        raise ConfigError(str(e), source=source) from e
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name in _SECTIONS:
            sections[name] = build(_SECTIONS[name], _table(value, name, source), key=name, source=source)
        elif name == "scores":
            table = _table(value, name, source)
            scores = {}
            for sym, weight in table.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                    raise ConfigError(
                        f"expected a number, got {weight!r}", source=source, key=f"scores.{sym}"
                    )
                scores[sym] = float(weight)
            sections["scores"] = MappingProxyType(scores)
        elif name in filters:
            pass
        else:
            known = sorted(set(_SECTIONS) | {"scores"} | set(filters))
            raise ConfigError(
                f"unknown section (known sections: {', '.join(known)})", source=source, key=name
            )
    specs = tuple(
        _build_filter(name, cls, _table(data.get(name, {}), name, source), source)
        for name, cls in filters.items()
    )
    return Config(**sections, filters=specs, source=source)


def _table(value: Any, key: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a table, got {value!r}", source=source, key=key)
    return value


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a TOML file; ``None`` gives the embedded default."""
    if path is None:
        return config_from_dict({}, source="<embedded default>")
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read configuration: {e.strerror}", source=str(p)) from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e}", source=str(p)) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", source=str(p)) from e
    return config_from_dict(data, source=str(p))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
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
    out = [f"# effective configuration from {config.source}", ""]
    for name, cls in _SECTIONS.items():
        out += _section_lines(name, getattr(config, name), cls) + [""]
    out.append("[scores]")
    out.append("# symbol weights: filters' defaults, overridden by this table")
    for sym, weight in sorted(config.weights().items()):
        out.append(f"{sym} = {weight!r}")
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
