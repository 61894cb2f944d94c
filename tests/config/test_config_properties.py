"""Property tests for the configuration loader (issue 10): whatever a document holds — random
nesting, hostile strings and floats, wrong types — loading either gives a valid
:class:`Config` or raises :class:`ConfigError` naming the key on one line, never another
exception; and what ``milterfilters config`` renders loads back to the same configuration."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from milterfilters.config import Config, config_from_dict, load_config, render_config
from milterfilters.config.loader import SECTIONS
from milterfilters.config.registry import available_filters
from milterfilters.config.sections import SCORE_LIMIT
from milterfilters.core.filter import FilterSettings
from milterfilters.core.schema import ConfigError
from tests.support.fuzz import fuzz_settings

FILTERS = available_filters()

#: characters an attacker would try: line breaks, NUL, DEL, TOML/RFC specials, non-ASCII
HOSTILE_CHARS = st.sampled_from(list('\r\n\x00\x7f\t"\\;=()<>@,:[]{}# .\u2028\u0085é€\U0001f600'))
hostile_text = st.text(st.one_of(HOSTILE_CHARS, st.characters(exclude_categories=["Cs"])), max_size=40)
hostile_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, SCORE_LIMIT, 5e-324]),
)
hostile_int = st.one_of(st.integers(-(10**30), 10**30), st.sampled_from([0, -1, 1 << 63, -(1 << 63)]))
scalars = st.one_of(st.booleans(), hostile_int, hostile_float, hostile_text)
any_value = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=20,
)


def _for_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the right type for ``tp`` (so that loads succeed often enough to round-trip)."""
    origin = get_origin(tp)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(a) for a in get_args(tp) if a is not type(None)))
    if origin in (list, tuple):
        return st.lists(_for_type(get_args(tp)[0]), max_size=3)
    if tp is float:
        return st.one_of(hostile_float, st.floats(-100, 100))
    if tp is int:
        return st.one_of(hostile_int, st.integers(0, 100_000))
    if tp is bool:
        return st.booleans()
    if tp is str:
        return st.one_of(hostile_text, st.text("abcxyz.-_ ", max_size=20))
    return any_value


def _typed_keys(classes: list[type]) -> dict[str, st.SearchStrategy[Any]]:
    keys: dict[str, st.SearchStrategy[Any]] = {}
    for cls in classes:
        hints = get_type_hints(cls)
        keys |= {f.name: _for_type(hints[f.name]) for f in dataclasses.fields(cls)}
    return keys


def _section(classes: list[type]) -> st.SearchStrategy[dict[str, Any]]:
    """A table with some of the keys of ``classes`` (typed or hostile values) and maybe a stray key."""
    keys = {name: st.one_of(typed, any_value) for name, typed in _typed_keys(classes).items()}
    chosen = st.fixed_dictionaries({}, optional=keys)
    stray = st.dictionaries(hostile_text, any_value, max_size=1)
    return st.one_of(chosen, st.builds(lambda a, b: {**b, **a}, chosen, stray))


def _one_typed_key(classes: list[type]) -> st.SearchStrategy[dict[str, Any]]:
    """A table with one key of ``classes`` holding a value of its type (often a valid one)."""
    keys = _typed_keys(classes)
    return st.sampled_from(sorted(keys)).flatmap(lambda k: st.builds(lambda v: {k: v}, keys[k]))


CLASSES = {name: [cls] for name, cls in SECTIONS.items()} | {
    name: [FilterSettings, cls.Options] for name, cls in FILTERS.items()
}
SECTION_STRATEGIES = {name: _section(classes) for name, classes in CLASSES.items()}
TYPED_STRATEGIES = {name: _one_typed_key(classes) for name, classes in CLASSES.items()}
scores = st.dictionaries(
    st.one_of(st.sampled_from(["GTUBE", "SPF_FAIL", "CLASSIFIER_SPAM"]), hostile_text),
    st.one_of(hostile_float, st.floats(-50, 50), any_value),
    max_size=3,
)
documents = st.one_of(
    st.fixed_dictionaries({}, optional={**SECTION_STRATEGIES, "scores": scores}),
    st.fixed_dictionaries({}, optional={**TYPED_STRATEGIES, "scores": scores}),
    st.dictionaries(hostile_text, any_value, max_size=3),
    st.builds(
        lambda d, k, v: {**d, k: v},
        st.fixed_dictionaries({}, optional=SECTION_STRATEGIES),
        hostile_text,
        any_value,
    ),
)


def _load_or_refuse(load: typing.Callable[[], Config]) -> Config | None:
    """Run ``load``: a Config, or a one-line ConfigError that names a key or the TOML problem."""
    try:
        config = load()
    except ConfigError as e:
        event("refused")
        text = str(e)
        assert "\n" not in text and "\r" not in text
        assert e.key or e.message.startswith("invalid TOML"), text
        return None
    event("loaded")
    return config


def _assert_round_trips(config: Config) -> None:
    rendered = render_config(config)
    again = config_from_dict(tomllib.loads(rendered), source=config.source)
    assert render_config(again) == rendered
    assert again.weights() == config.weights()


def _valid(config: Config) -> None:
    """What a loaded configuration guarantees, whatever the document was."""
    numbers = [config.dns.timeout, *config.weights().values()]
    numbers += [
        t for t in (config.actions.tag, config.actions.quarantine, config.actions.reject) if t is not None
    ]
    assert all(math.isfinite(n) for n in numbers)
    assert config.dns.timeout > 0 and all(f.settings.timeout > 0 for f in config.filters)
    text = config.actions.reject_text
    assert len(text) <= 400 and all(" " <= c <= "~" for c in text)
    assert all(c.isalnum() or c in "!#$%&'*+-.^_`{|}~" for c in config.milter.authserv_id)


@fuzz_settings(300)
@given(documents)
def test_any_document_loads_or_is_refused_naming_a_key(document: dict[str, Any]) -> None:
    config = _load_or_refuse(lambda: config_from_dict(document, source="fuzz.toml"))
    if config is not None:
        _valid(config)
        _assert_round_trips(config)


def _toml_safe(value: Any) -> Any:
    """``value`` with what TOML cannot hold (None, non-string keys) dropped."""
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_safe(v) for v in value if v is not None]
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents, st.sampled_from(["", "\n[milter\n", "\nx = " + "[" * 700 + "]" * 700 + "\n", "\n\x00"]))
def test_any_toml_file_loads_or_is_refused_naming_file_and_key(
    tmp_path_factory: Any, document: dict[str, Any], tail: str
) -> None:
    try:
        text = tomli_w.dumps(_toml_safe(document)) + tail
    except (TypeError, ValueError):  # what tomli_w cannot write (e.g. mixed arrays in old TOML)
        return
    path: Path = tmp_path_factory.mktemp("fuzz") / "milterfilters.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    config = _load_or_refuse(lambda: load_config(path))
    if config is not None:
        _valid(config)
        _assert_round_trips(config)
