"""Rendering the Authentication-Results header field (RFC 8601) from typed results.

Every value we write comes from parts a sender may control (a MAIL FROM local part, a HELO
name, a DKIM tag), so each is written as the RFC allows and nothing more: a token as it is, an
address ``local@domain`` with a token local part and a host-name domain as it is, anything else
as a quoted-string with ``"`` and ``\\`` escaped; comments escape ``(``, ``)`` and ``\\``;
control characters become ``?``. Parsing an existing field (to spot forgeries) is the auth
package's job (:mod:`milterfilters.auth.authres_forgery`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from milterfilters.core.verdict import AuthResult, unfold

#: RFC 5322 2.1.1: lines SHOULD stay within 78 characters (and MUST within 998)
LINE_LENGTH = 78

#: RFC 2045 token: printable ASCII without tspecials
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
#: ``[local-part] "@" domain-name`` (RFC 8601 pvalue) with a token local part
_ATOM = r"[A-Za-z0-9!#$%&'*+^_`{|}~-]+"
_ADDRESS = re.compile(rf"(?:{_ATOM}(?:\.{_ATOM})*)?@{_LABEL}(?:\.{_LABEL})*\.?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str) -> str:
    return _CONTROL.sub("?", unfold(text))


def quote_value(text: str) -> str:
    """``text`` as an RFC 8601 value: a token, or else a quoted-string."""
    text = _clean(text)
    if _TOKEN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_pvalue(text: str) -> str:
    """``text`` as an RFC 8601 pvalue: an address or a value."""
    text = _clean(text)
    if _ADDRESS.fullmatch(text):
        return text
    return quote_value(text)


def quote_comment(text: str) -> str:
    """``text`` as an RFC 5322 comment, parentheses included."""
    text = _clean(text)
    return "(" + re.sub(r"([()\\])", r"\\\1", text) + ")"


def render_result(result: AuthResult) -> str:
    """One resinfo: ``method=result (comment) reason="..." ptype.property=value ...``."""
    out = f"{result.method.lower()}={result.result.lower()}"
    if result.comment and _clean(result.comment):
        out += " " + quote_comment(result.comment)
    if result.reason:
        out += " reason=" + quote_value(re.sub(r"[^\x20-\x7e]", "?", unfold(result.reason)))
    for name, value in result.properties:
        out += f" {name}={quote_pvalue(value)}"
    return out


def render_authentication_results(authserv_id: str, results: Sequence[AuthResult]) -> str:
    """The value of one Authentication-Results field carrying ``results``.

    A field longer than a line is folded with one result per line (a message with several
    DKIM signatures easily passes the 998-character limit on one line).
    """
    head = quote_value(authserv_id)
    items = [render_result(r) for r in results] or ["none"]
    value = "; ".join([head, *items])
    if not results or len("Authentication-Results: ") + len(value) <= LINE_LENGTH:
        return value
    return ";\n\t".join([head, *items])
