"""``[metrics] listen``: off by default, HOST:PORT validated at load, errors name the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milterfilters.config import config_from_dict
from milterfilters.config.sections import parse_listen
from milterfilters.core.schema import ConfigError


def test_metrics_are_off_by_default() -> None:
    assert config_from_dict({}).metrics.address is None


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("127.0.0.1:9101", ("127.0.0.1", 9101)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_parses(listen: str, address: tuple[str, int]) -> None:
    assert config_from_dict({"metrics": {"listen": listen}}).metrics.address == address


@pytest.mark.parametrize(
    "listen",
    [
        "9101",
        ":9101",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "::1:9101",
        "[nope]:1",
        "a b:1",
        "h:x",
        "h:\n1",
        "h:\u0661",
    ],
)
def test_bad_listen_is_a_config_error_naming_the_key(listen: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"metrics": {"listen": listen}}, source="m.toml")
    assert "m.toml" in str(e.value) and "metrics.listen" in str(e.value)


@given(st.text(max_size=40))
def test_parse_listen_returns_a_bindable_pair_or_raises_value_error(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ValueError:
        return
    assert 1 <= port <= 65535
    assert host and all(c.isalnum() or c in ".-:" for c in host) and host.isascii()
