"""The RFC 5321 path parser: what it accepts, how it normalizes, what it refuses."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milterfilters.mail.addresses import (
    Address,
    AddressSyntaxError,
    format_address,
    format_path,
    normalize_domain,
    parse_forward_path,
    parse_reverse_path,
)


@pytest.mark.parametrize(
    ("text", "local", "domain", "route"),
    [
        ("user@example.org", "user", "example.org", ()),
        ("<user@example.org>", "user", "example.org", ()),
        ("User.Name+tag@EXAMPLE.Org", "User.Name+tag", "example.org", ()),
        ("user@example.org.", "user", "example.org", ()),
        ('"john doe"@example.org', "john doe", "example.org", ()),
        ('"a\\"b\\\\c"@example.org', 'a"b\\c', "example.org", ()),
        ('"\\a"@example.org', "a", "example.org", ()),
        ('""@example.org', "", "example.org", ()),
        ('"user@remote.test"@example.org', "user@remote.test", "example.org", ()),
        ("user%remote.test@example.org", "user%remote.test", "example.org", ()),
        ("remote.test!user@example.org", "remote.test!user", "example.org", ()),
        ("@a.example,@B.example:user@c.example", "user", "c.example", ("a.example", "b.example")),
        ("<@a.example:user@c.example>", "user", "c.example", ("a.example",)),
        ("user@[192.0.2.1]", "user", "[192.0.2.1]", ()),
        ("user@[IPv6:2001:DB8:0:0::1]", "user", "[IPv6:2001:db8::1]", ()),
        ("user@[ipv6:::ffff:192.0.2.1]", "user", "[IPv6:::ffff:c000:201]", ()),
        ("user@[x-tag:some-content]", "user", "[x-tag:some-content]", ()),
        ("jörg@bücher.example", "jörg", "xn--bcher-kva.example", ()),
        ("user@Bücher.EXAMPLE.", "user", "xn--bcher-kva.example", ()),  # ASCII letters: any case
        ("user@XN--BCHER-KVA.example", "user", "xn--bcher-kva.example", ()),
        ("user@xn--bcher-kva.example", "user", "xn--bcher-kva.example", ()),
        ("用户@例子.测试", "用户", "xn--fsqu00a.xn--0zwm56d", ()),
        ("Postmaster", "Postmaster", "", ()),
        ("<postmaster>", "postmaster", "", ()),
        ("a" * 900 + "@example.org", "a" * 900, "example.org", ()),
        ("u@" + "a" * 63 + ".example", "u", "a" * 63 + ".example", ()),
    ],
)
def test_parses_and_normalizes(text: str, local: str, domain: str, route: tuple[str, ...]) -> None:
    address = parse_forward_path(text)
    assert (address.local_part, address.domain, address.source_route) == (local, domain, route)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<>",
        "user",
        "user@",
        "@example.org",
        "user@@example.org",
        "user@example..org",
        "user@example.org..",
        "user@-example.org",
        "user@example-.org",
        "user@exa mple.org",
        "user@exa_mple.org",
        ".user@example.org",
        "user.@example.org",
        "us..er@example.org",
        "us er@example.org",
        'us"er@example.org',
        '"unterminated@example.org',
        '"tab\there"@example.org',
        '"\\\x01"@example.org',
        "user@example.org>",
        "<user@example.org",
        "<user@example.org> trailing",
        "user@[192.0.2]",
        "user@[192.0.2.256]",
        "user@[192.0.2.01]",
        "user@[IPv6:2001:db8::g]",
        "user@[IPv6:fe80::1%eth0]",
        "user@[192.0.2.1",
        "user@[:content]",
        "user@xn--zz.example",
        "@a.example:",
        "@a.example,user@c.example",
        "@:user@c.example",
        "Postmaster@",
        "u@" + "a" * 64 + ".example",
        "u@" + ".".join(["a" * 60] * 5),
        "a" * 1000 + "@example.org",
        "bad\udcffbyte@example.org",
        "user@bad\udcffbyte.example",
        "c1\x85control@example.org",
        "nul\x00@example.org",
    ],
)
def test_refuses_malformed(text: str) -> None:
    with pytest.raises(AddressSyntaxError):
        parse_forward_path(text)


def test_null_sender_and_reverse_path() -> None:
    assert parse_reverse_path("") is None
    assert parse_reverse_path("<>") is None
    assert format_path(None) == "<>"
    sender = parse_reverse_path("<Bounce+x=y@Example.ORG.>")
    assert sender == Address("Bounce+x=y", "example.org")
    with pytest.raises(AddressSyntaxError):
        parse_reverse_path("Postmaster")  # only a recipient may be the bare Postmaster


def test_properties_used_by_the_relay_filter() -> None:
    assert parse_forward_path("user@[192.0.2.1]").literal_ip == ipaddress.IPv4Address("192.0.2.1")
    assert parse_forward_path("user@[IPv6:2001:db8::1]").literal_ip == ipaddress.IPv6Address("2001:db8::1")
    general = parse_forward_path("user@[x-tag:c]")
    assert general.is_literal and general.literal_ip is None
    assert not parse_forward_path("user@example.org").is_literal
    for routed in ('"a@b"@c.example', "a%b@c.example", "a!b@c.example"):
        assert parse_forward_path(routed).has_routing_characters
    assert not parse_forward_path('"a b"@c.example').has_routing_characters
    assert parse_forward_path("POSTMASTER").is_postmaster
    assert not parse_forward_path("postmaster@example.org").is_postmaster


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (Address("user", "example.org"), "user@example.org"),
        (Address("john doe", "example.org"), '"john doe"@example.org'),
        (Address('a"b\\c', "example.org"), '"a\\"b\\\\c"@example.org'),
        (Address("", "example.org"), '""@example.org'),
        (Address("a..b", "example.org"), '"a..b"@example.org'),
        (Address("u", "c.example", ("a.example", "b.example")), "@a.example,@b.example:u@c.example"),
        (Address("Postmaster", ""), "Postmaster"),
    ],
)
def test_formats_canonically(address: Address, text: str) -> None:
    assert format_address(address) == text
    assert parse_forward_path(text) == address


def test_normalize_domain() -> None:
    assert normalize_domain("Example.ORG.") == "example.org"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    # no UTS #46 mapping (it used to turn these into example.org): U-labels must be valid
    # IDNA2008 as written, NFC and lower case
    for bad in (
        "",
        ".",
        "a..b",
        "exa mple.org",
        "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\u3002org",  # full-width, ideographic full stop
        "example\u3002org",
        "example\uff0eorg",
        "\u212aey.example",  # Kelvin sign, lower() gives "k"
        "BÜCHER.example",  # upper-case U-label
        "e\u0301cole.example",  # not NFC
        "xn--Bcher-kva-.example",
    ):
        with pytest.raises(AddressSyntaxError):
            normalize_domain(bad)


# -- properties (the parser's general properties: test_address_properties.py) --------------

_atext = st.sampled_from(list("abcXYZ019!#$%&'*+/=?^_`{|}~-") + ["é", "ü", "日"])
_atom = st.text(_atext, min_size=1, max_size=8)
_dot_string = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_quoted = st.text(
    st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from(["é", "日", "\\", '"']), max_size=12
).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True) | st.sampled_from(
    ["bücher", "日本", "xn--bcher-kva", "ÉCOLE"]
)
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join) | st.sampled_from(
    ["[192.0.2.1]", "[IPv6:2001:db8::1]", "[IPv6:::ffff:1.2.3.4]", "[x-tag:abc]", "example.org."]
)
_mailbox = st.builds(lambda lp, d: f"{lp}@{d}", _dot_string | _quoted, _domain)
_route = st.lists(_domain.map(lambda d: "@" + d), max_size=2).map(lambda r: ",".join(r) + ":" if r else "")
_plausible = st.builds(lambda r, m, b: f"<{r}{m}>" if b else r + m, _route, _mailbox, st.booleans())


@settings(max_examples=200, deadline=None)
@given(_plausible)
def test_plausible_addresses_parse(text: str) -> None:
    """The generator builds RFC 5321 addresses, so (IDNA aside) they must be accepted."""
    try:
        parse_forward_path(text)
    except AddressSyntaxError as e:
        assert "internationalized" in str(e) or "A-label" in str(e), e
