"""Properties of the RFC 5321 address parser, over hostile and plausible inputs (issue 10).

* parse → render → parse gives the same address, and rendering is stable;
* no input makes the parser raise anything but :class:`AddressSyntaxError`;
* the domain of an accepted address is lower-case ASCII whose ``xn--`` labels are canonical
  A-labels of valid IDNA2008 U-labels, and it names exactly the domain that was written
  (ASCII case aside): no UTS #46 mapping turns a look-alike into another domain;
* a quoted local part holding ``@`` keeps the domain after the last unquoted ``@``.
"""

from __future__ import annotations

import idna
from hypothesis import given
from hypothesis import strategies as st

from milterfilters.mail.addresses import (
    Address,
    AddressSyntaxError,
    format_path,
    normalize_domain,
    parse_forward_path,
    parse_reverse_path,
)
from tests.support.fuzz import fuzz_settings

# -- building blocks ---------------------------------------------------------------------

_ldh = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)
#: letters that are PVALID in IDNA2008 (lower case, precomposed), and a few scripts (the
#: Arabic alef and Hebrew qof bring the bidi rule in)
_SCRIPTS = ["日", "本", "例", "测", "ж", "λ", "\u0627", "\u05e7"]
_u_letters = st.sampled_from(list("abcxyz09éüßçñøåæœ") + _SCRIPTS)
#: mixes of those letters: many are valid U-labels, some break the bidi or context rules
_u_mix = st.text(_u_letters, min_size=1, max_size=8).filter(lambda s: not s.isascii())
_u_label = _u_mix.filter(lambda u: _alabel_or(u, "") != "")  # valid IDNA2008 U-labels only
_a_label = _u_label.map(lambda u: _alabel_or(u, ""))
#: what UTS #46 would map, or what is simply not a U-label
_lookalike = st.sampled_from(
    [
        "\uff54\uff45\uff53\uff54",  # full-width "test"
        "\uff34\uff25\uff33\uff34",  # full-width "TEST"
        "test\u3002example",  # ideographic full stop
        "test\uff0eexample",  # full-width full stop
        "test\uff61example",  # half-width ideographic full stop
        "\u212aelvin",  # Kelvin sign
        "BÜCHER",
        "e\u0301cole",  # not NFC
        "a\u200db",  # ZWJ out of context
        "\u00adtest",  # soft hyphen, mapped away by UTS #46
        "xn--Bcher-kva-",
        "xn--ls8h",  # an A-label of a disallowed code point
        "ﬀ",  # ligature, mapped to "ff"
    ]
)
_label = st.one_of(_ldh, _u_mix, _a_label, _lookalike)
_domain_text = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(_label, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
)
_literal = st.sampled_from(["[192.0.2.1]", "[IPv6:2001:DB8::1]", "[IPv6:::ffff:1.2.3.4]", "[x-tag:abc]"])
_atom = st.text(st.sampled_from(list("aZ09!#$%&'*+/=?^_`{|}~-") + ["é", "日"]), min_size=1, max_size=6)
_dot_string = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_quoted_value = st.text(
    st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from(["@", "é", "日", "@", '"', "\\"]),
    max_size=14,
)


def _alabel_or(u_label: str, default: str) -> str:
    try:
        return idna.alabel(u_label).decode("ascii")
    except idna.IDNAError:
        return default


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_local = st.one_of(_dot_string, _quoted_value.map(_quote))
_mailbox = st.builds(lambda lp, d: f"{lp}@{d}", _local, _domain_text | _literal)
_route = st.lists((_domain_text | _literal).map(lambda d: "@" + d), max_size=2).map(
    lambda r: ",".join(r) + ":" if r else ""
)
_path = st.builds(lambda r, m, b: f"<{r}{m}>" if b else r + m, _route, _mailbox, st.booleans())
_mutated = st.builds(
    lambda s, i, c: s[: i % (len(s) + 1)] + c + s[i % (len(s) + 1) :],
    _path,
    st.integers(min_value=0, max_value=300),
    st.sampled_from(list('@.:,<>[]"\\ \t\r\n\x00\udcff\u3002\uff0e\uff20') + ["xn--", "IPv6:"]),
)
_noise = st.text(st.characters(exclude_categories=()), max_size=80)  # surrogates included
_any_input = st.one_of(_path, _mutated, _noise)


def _parse_both(text: str) -> list[Address]:
    """What the forward and reverse parsers accept of ``text`` (each may refuse it)."""
    accepted = []
    for parse in (parse_forward_path, parse_reverse_path):
        try:
            address = parse(text)
        except AddressSyntaxError:
            continue
        if address is not None:
            accepted.append(address)
    return accepted


def _domain_is_clean(domain: str) -> bool:
    """Lower-case ASCII LDH labels; every xn-- label the canonical A-label of a valid U-label."""
    if not domain.isascii() or domain != domain.lower():
        return False
    for label in domain.split("."):
        if not label or label.startswith("-") or label.endswith("-"):
            return False
        if label.startswith("xn--"):
            try:
                if idna.alabel(idna.ulabel(label)).decode("ascii") != label:
                    return False
            except idna.IDNAError:
                return False
    return True


# -- the properties ------------------------------------------------------------------------


@fuzz_settings(600)
@given(_any_input)
def test_no_input_raises_anything_but_address_syntax_error(text: str) -> None:
    _parse_both(text)  # any other exception fails the test


@fuzz_settings(600)
@given(st.one_of(_path, _mutated))
def test_parse_render_parse_round_trips(text: str) -> None:
    for address in _parse_both(text):
        rendered = format_path(address)
        again = parse_forward_path(rendered)
        assert again == address
        assert format_path(again) == rendered


@fuzz_settings(600)
@given(_any_input)
def test_accepted_domains_are_lower_case_a_labels_of_valid_idna2008_names(text: str) -> None:
    for address in _parse_both(text):
        for domain in (address.domain, *address.source_route):
            assert domain == "" or domain.startswith("[") or _domain_is_clean(domain), domain


def _as_written(label: str) -> str:
    """A label in the form :func:`normalize_domain` must give back: ASCII case only folded."""
    lowered = label.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))
    return lowered if lowered.isascii() else idna.alabel(lowered).decode("ascii")


@fuzz_settings(600)
@given(_domain_text)
def test_a_domain_is_accepted_only_as_written(domain: str) -> None:
    """No mapping: the result is the written name, label by label, or the name is refused."""
    try:
        normalized = normalize_domain(domain)
    except AddressSyntaxError:
        return
    written = domain.removesuffix(".").split(".")
    assert normalized.split(".") == [_as_written(label) for label in written]


@fuzz_settings(400)
@given(_lookalike, st.sampled_from(["", ".example", ".EXAMPLE."]))
def test_lookalike_labels_are_refused(label: str, rest: str) -> None:
    assert not _parse_both(f"user@{label}{rest}")


@fuzz_settings(600)
@given(
    st.lists(_quoted_value, min_size=1, max_size=3).map("@".join),
    _ldh | _u_label,
    st.lists(_ldh, min_size=1, max_size=3).map(".".join),
)
def test_quoted_local_part_with_at_keeps_the_domain_after_the_last_unquoted_at(
    value: str, host: str, domain: str
) -> None:
    for text in (f"{_quote(value)}@{host}.{domain}", f"<{_quote(value)}@{host}.{domain}>"):
        address = parse_forward_path(text)
        assert address.local_part == value
        assert address.domain == normalize_domain(f"{host}.{domain}")
        assert parse_forward_path(format_path(address)) == address
