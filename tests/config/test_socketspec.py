import pytest

from milterfilters.config.socketspec import parse_socket_spec


@pytest.mark.parametrize(
    ("spec", "libmilter", "postfix"),
    [
        ("unix:/run/m.sock", "unix:/run/m.sock", "unix:/run/m.sock"),
        ("local:/run/m.sock", "unix:/run/m.sock", "unix:/run/m.sock"),
        ("/run/m.sock", "unix:/run/m.sock", "unix:/run/m.sock"),
        ("inet:127.0.0.1:8899", "inet:8899@127.0.0.1", "inet:127.0.0.1:8899"),
        ("inet:8899@127.0.0.1", "inet:8899@127.0.0.1", "inet:127.0.0.1:8899"),
        ("inet:localhost:8899", "inet:8899@localhost", "inet:localhost:8899"),
        ("inet6:[::1]:8899", "inet6:8899@::1", "inet6:::1:8899"),
        ("inet6:8899@::1", "inet6:8899@::1", "inet6:::1:8899"),
    ],
)
def test_both_notations_parse_to_the_same_socket(spec: str, libmilter: str, postfix: str) -> None:
    parsed = parse_socket_spec(spec)
    assert parsed.libmilter == libmilter
    assert parsed.postfix == postfix
    assert parse_socket_spec(parsed.libmilter) == parsed


@pytest.mark.parametrize("bad", ["", "inet:", "inet:host:99999", "unix:relative", "tcp:1@h", "inet6:[zz]:1"])
def test_bad_specs_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_socket_spec(bad)
