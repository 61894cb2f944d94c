"""Reading back the header fields we write, with parsers that are not ours.

* :func:`parsed_authentication_results` — the ``authres`` library's reading of an
  Authentication-Results value, as plain tuples to compare with the results we computed;
* :func:`expected_entries` — the same tuples from our typed :class:`AuthResult` values;
* :func:`parse_received_spf` — a strict reader of RFC 7208 §9.1's grammar, written here
  from the ABNF (no library parses Received-SPF).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import authres

from milterfilters.core.authresults import LINE_LENGTH, printable, quote_pvalue
from milterfilters.core.verdict import AuthResult

Entry = tuple[str, str, str, dict[str, str]]  # method, result, reason, properties


def unfold(value: str) -> str:
    """RFC 5322 unfolding: a line break followed by white space is removed."""
    assert re.search(r"\n(?![ \t])", value) is None, f"bare line break in {value!r}"
    return value.replace("\n", "")


def _unquote(text: str) -> str:
    """authres leaves quoted-pairs escaped in what it returns."""
    return re.sub(r"\\(.)", r"\1", text)


def parsed_authentication_results(value: str) -> tuple[str, list[Entry]]:
    """authserv-id and entries of an Authentication-Results value, as authres reads them."""
    header = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + unfold(value))
    entries = [
        (
            r.method,
            r.result,
            _unquote(r.reason or ""),
            {f"{p.type}.{p.name}": _unquote(p.value) for p in r.properties},
        )
        for r in header.results
    ]
    return header.authserv_id, entries


def expected_entries(results: Sequence[AuthResult]) -> list[Entry]:
    """What a reader must find for ``results``: values made printable ASCII, as documented."""
    return [
        (
            r.method.lower(),
            r.result.lower(),
            printable(r.reason),
            {name.lower(): printable(value) for name, value in r.properties if value},
        )
        for r in results
    ]


def assert_reads_back(value: str, authserv_id: str, results: Sequence[AuthResult]) -> None:
    """authres reads ``value`` as ``authserv_id`` and exactly ``results``: same methods, results,
    reasons and properties, no entry more or less.

    authres 1.2 reads a quoted-string pvalue only at the end of a resinfo; where a result
    holds two values that need quoting, the earlier ones may be missing from its reading (it
    never reads them as anything else), so there only absence is allowed.
    """
    parsed_id, entries = parsed_authentication_results(value)
    assert parsed_id == authserv_id
    expected = expected_entries(results)
    assert len(entries) == len(expected), (entries, expected)
    for got, want, result in zip(entries, expected, results, strict=True):
        assert got[:3] == want[:3]
        quoted = sum(quote_pvalue(v).startswith('"') for _, v in result.properties if v)
        if quoted <= 1:
            assert got[3] == want[3]
        else:
            assert got[3].items() <= want[3].items()


def assert_folded(name: str, value: str) -> None:
    """Every line within 78 characters, unless no space before the limit allowed a break."""
    for i, line in enumerate(value.split("\n")):
        room = LINE_LENGTH - (len(name) + 2 if i == 0 else 0)
        space = line.rfind(" ", 1, room + 1)
        if len(line) > room and space > 0 and line[:space].strip():
            raise AssertionError(f"line {i} of {name} ({len(line)} characters) could be folded: {line!r}")


# -- Received-SPF (RFC 7208 §9.1) ------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def _comment(text: str, pos: int) -> tuple[str, int]:
    """The comment starting at ``text[pos] == "("`` (nested, quoted-pairs) and where it ends."""
    depth, out, i = 0, [], pos
    while i < len(text):
        c = text[i]
        if c == "\\":
            out.append(text[i + 1])
            i += 2
            continue
        if c == "(":
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    raise AssertionError(f"unterminated comment in {text!r}")


def parse_received_spf(value: str) -> tuple[str, str, list[tuple[str, str]]]:
    """``(result, comment, [(key, value), ...])`` of a Received-SPF value; AssertionError
    for anything RFC 7208 §9.1's grammar does not allow."""
    text = unfold(value)
    assert text.isascii() and text.isprintable(), repr(text)
    m = re.match(r"\s*([A-Za-z]+)\s+", text)
    assert m, f"no result in {text!r}"
    result, pos = m.group(1).lower(), m.end()
    comment = ""
    if text.startswith("(", pos):
        comment, pos = _comment(text, pos)
        pos += len(text[pos:]) - len(text[pos:].lstrip())
    pairs: list[tuple[str, str]] = []
    while pos < len(text):
        key = _KEY.match(text, pos)
        assert key and text.startswith("=", key.end()), f"expected key= at {text[pos:]!r}"
        pos = key.end() + 1
        quoted = _QUOTED.match(text, pos)
        if quoted:
            item, pos = _unquote(quoted.group(1)), quoted.end()
        else:
            atom = _DOT_ATOM.match(text, pos)
            assert atom, f"expected a dot-atom or quoted-string at {text[pos:]!r}"
            item, pos = atom.group(), atom.end()
        pairs.append((key.group().lower(), item))
        rest = text[pos:].lstrip()
        if rest:
            assert rest.startswith(";"), f"expected ';' at {rest!r}"
            rest = rest[1:].lstrip()
        pos = len(text) - len(rest)
    return result, comment, pairs
