"""Where filter classes come from: the built-in ones, and plugins from the entry-point group
``milterfilters.filters``. Plugins are validated when loaded, not when first called."""

from __future__ import annotations

import dataclasses
import importlib
import re
from importlib.metadata import entry_points

from milterfilters.core.filter import COMMON_KEYS, Filter

ENTRY_POINT_GROUP = "milterfilters.filters"

#: Built-in filters in chain order: who is talking first, then what DNS says, then content.
BUILTIN: dict[str, str] = {
    "relay": "milterfilters.relay.filter:RelayFilter",
    "ratelimit": "milterfilters.relay.ratelimit:RateLimitFilter",
    "spf": "milterfilters.spf.filter:SpfFilter",
    "authres_forgery": "milterfilters.auth.authres_forgery:AuthresForgeryFilter",
    "dkim": "milterfilters.auth.dkim_filter:DkimFilter",
    "dmarc": "milterfilters.auth.dmarc_filter:DmarcFilter",
    "allowlist": "milterfilters.auth.allowlist:AllowlistFilter",
    "dkim_sign": "milterfilters.auth.dkim_sign:DkimSignFilter",
    "gtube": "milterfilters.builtin.gtube:GtubeFilter",
    "size": "milterfilters.builtin.size:SizeFilter",
    "classifier": "milterfilters.classifier.filter:ClassifierFilter",
}

#: Top-level config sections that are not filters.
RESERVED_SECTIONS = frozenset({"milter", "dns", "actions", "scores", "logging", "metrics"})


class PluginError(Exception):
    """A filter class that cannot be used (bad plugin)."""


def _import(target: str) -> type:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def validate_filter_class(cls: object, name: str) -> type[Filter]:
    """Check that ``cls`` is a usable filter class registered as ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Filter)):
        raise PluginError(f"filter {name!r}: {cls!r} is not a milterfilters.Filter subclass")
    if cls.name != name:
        raise PluginError(f"filter {name!r}: class declares name {cls.name!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in RESERVED_SECTIONS:
        raise PluginError(f"filter name {name!r} is not allowed")
    if not (dataclasses.is_dataclass(cls.Options) and isinstance(cls.Options, type)):
        raise PluginError(f"filter {name!r}: Options must be a dataclass")
    clash = COMMON_KEYS & {f.name for f in dataclasses.fields(cls.Options)}
    if clash:
        raise PluginError(f"filter {name!r}: options reuse common keys {sorted(clash)}")
    for symbol, weight in cls.symbols.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", symbol) or not isinstance(weight, (int, float)):
            raise PluginError(f"filter {name!r}: bad symbol {symbol!r} = {weight!r}")
    if not cls.stages():
        raise PluginError(f"filter {name!r} implements no stage method")
    return cls


def available_filters() -> dict[str, type[Filter]]:
    """Every filter class by name, built-ins first in chain order, then plugins."""
    found: dict[str, type[Filter]] = {}
    for name, target in BUILTIN.items():
        found[name] = validate_filter_class(_import(target), name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise PluginError(f"plugin filter {ep.name!r} clashes with a built-in filter")
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin must be named, not crash obscurely
            raise PluginError(f"plugin filter {ep.name!r} ({ep.value}) failed to load: {e}") from e
        found[ep.name] = validate_filter_class(cls, ep.name)
    return found
