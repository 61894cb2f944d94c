"""Writing the header fields we add — Authentication-Results (RFC 8601) first — from typed parts.

Every value we write comes from parts a sender may control (a MAIL FROM local part, a HELO
name, a DKIM tag, a DNS TXT text), so each is written as its RFC allows and nothing more:

* Authentication-Results (RFC 8601 §2.2): ``method``, ``result``, ``ptype`` and ``property``
  must be Keywords (they are ours; anything else is a bug and raises ``ValueError``); a value
  is a token (RFC 2045), a pvalue may also be ``[local-part] "@" domain-name`` with a
  dot-atom local part and a multi-label domain name, anything else is a quoted-string with
  ``"`` and ``\\`` escaped;
* comments escape ``(``, ``)`` and ``\\`` (RFC 5322 §3.2.2);
* what is not printable US-ASCII (control characters, line breaks, non-ASCII text, lone
  surrogates) becomes ``?``: a field we add is plain ASCII that any parser reads;
* :func:`fold` folds a field at its spaces to lines of at most 78 characters where the content
  allows (RFC 5322 §2.1.1); every space we write is one where folding white space is allowed,
  including inside quoted-strings and comments, so unfolding restores the value exactly.

Parsing an existing field (to spot forgeries) is the auth package's job
(:mod:`milterfilters.auth.authres_forgery`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from milterfilters.core.verdict import AuthResult, unfold

__all__ = [
    "LINE_LENGTH",
    "fold",
    "printable",
    "quote_comment",
    "quote_pvalue",
    "quote_string",
    "quote_value",
    "render_authentication_results",
    "render_result",
]

#: RFC 5322 2.1.1: lines SHOULD stay within 78 characters (and MUST within 998)
LINE_LENGTH = 78

#: RFC 8601 Keyword (RFC 5321 Ldh-str): method, result, ptype, property names
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
#: RFC 2045 token: printable ASCII without SPACE and tspecials ()<>@,;:\"/[]?=
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")
#: RFC 6376 §3.5 domain-name: at least two labels, no trailing dot
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN_NAME = rf"{_LABEL}(?:\.{_LABEL})+"
#: RFC 5322 dot-atom-text, without the atext characters some parsers take for delimiters (/ = ?)
_ATOM = r"[A-Za-z0-9!#$%&'*+^_`{|}~-]+"
_ADDRESS = re.compile(rf"(?:{_ATOM}(?:\.{_ATOM})*)?@{_DOMAIN_NAME}")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str) -> str:
    """``text`` on one line of printable US-ASCII: line breaks (with the white space around
    them) become one space, every other character outside ``%x20-7E`` becomes ``?``."""
    return _NOT_PRINTABLE.sub("?", unfold(text))


def quote_string(text: str) -> str:
    """``text`` (printable ASCII) as a quoted-string, ``"`` and ``\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_value(text: str) -> str:
    """``text`` as an RFC 8601 value: a token, or else a quoted-string."""
    text = printable(text)
    return text if _TOKEN.fullmatch(text) else quote_string(text)


def quote_pvalue(text: str) -> str:
    """``text`` as an RFC 8601 pvalue: an address ``[local]@domain``, or a value."""
    text = printable(text)
    return text if _ADDRESS.fullmatch(text) else quote_value(text)


def quote_comment(text: str) -> str:
    """``text`` as an RFC 5322 comment, parentheses included, ``( ) \\`` escaped."""
    return "(" + re.sub(r"([()\\])", r"\\\1", printable(text)) + ")"


def _keyword(text: str, what: str) -> str:
    if not _KEYWORD.fullmatch(text):
        raise ValueError(f"Authentication-Results {what} must be a keyword, got {text!r}")
    return text.lower()


def _property(name: str) -> str:
    ptype, dot, prop = name.partition(".")
    if not dot:
        raise ValueError(f"Authentication-Results property must be ptype.property, got {name!r}")
    return f"{_keyword(ptype, 'ptype')}.{_keyword(prop, 'property')}"


def render_result(result: AuthResult) -> str:
    """One resinfo: ``method=result (comment) reason="..." ptype.property=value ...``;
    a property without a value is left out (an empty quoted-string trips common parsers)."""
    parts = [f"{_keyword(result.method, 'method')}={_keyword(result.result, 'result')}"]
    if printable(result.comment).strip():
        parts.append(quote_comment(result.comment))
    if result.reason:
        parts.append("reason=" + quote_value(result.reason))
    props = [(_property(name), quote_pvalue(value)) for name, value in result.properties if value]
    # quoted values last: the authres parser reads a quoted-string pvalue only at the end of a
    # resinfo and silently drops the properties after one (authres 1.2)
    props.sort(key=lambda prop: prop[1].startswith('"'))
    parts += [f"{name}={value}" for name, value in props]
    return " ".join(parts)


def fold(name: str, value: str, width: int = LINE_LENGTH) -> str:
    """``value`` folded at its spaces so that ``name: value`` keeps lines within ``width``
    characters where a space allows it; a line break goes before the space, which stays.

    Existing line breaks (``"\\n\\t"`` and the like, already folded) are kept.
    """
    lines = value.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        room = width - (len(name) + 2 if i == 0 else 0)
        out += _fold_line(line, room, width)
    return "\n".join(out)


def _fold_line(line: str, room: int, width: int) -> list[str]:
    out: list[str] = []
    while len(line) > room:
        cut = line.rfind(" ", 1, room + 1)
        if cut <= 0 or not line[:cut].strip():
            cut = line.find(" ", max(room, 1))  # a word longer than the line: after it
        if cut <= 0:
            break
        out.append(line[:cut])
        line, room = line[cut:], width
    return [*out, line]


def render_authentication_results(authserv_id: str, results: Sequence[AuthResult]) -> str:
    """The value of one Authentication-Results field carrying ``results``.

    On one line when it fits in 78 characters; else one result per line, each folded at its
    spaces (a message with several DKIM signatures easily passes 998 characters on one line).
    """
    head = quote_value(authserv_id)
    items = [render_result(r) for r in results] or ["none"]
    value = "; ".join([head, *items])
    if len("Authentication-Results: ") + len(value) <= LINE_LENGTH:
        return value
    return fold("Authentication-Results", ";\n\t".join([head, *items]))
