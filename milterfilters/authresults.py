"""Render and read Authentication-Results header fields (RFC 8601) with ``authres``."""

from __future__ import annotations

from collections.abc import Sequence

import authres

from milterfilters.verdict import AuthResult, unfold

#: RFC 5322 2.1.1: lines SHOULD stay within 78 characters (and MUST within 998)
LINE_LENGTH = 78


def render_authentication_results(authserv_id: str, results: Sequence[AuthResult]) -> str:
    """The value of one Authentication-Results field carrying ``results``.

    A field longer than a line is folded with one result per line (a message with several
    DKIM signatures easily passes the 998-character limit on one line).
    """
    items = []
    for r in results:
        props = [
            authres.AuthenticationResultProperty(*p[0].split(".", 1), unfold(p[1])) for p in r.properties
        ]
        items.append(
            authres.AuthenticationResult(
                method=r.method,
                result=r.result,
                result_comment=unfold(r.comment) or None,
                reason=unfold(r.reason) or None,
                properties=props,
            )
        )
    header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=items)
    value = str(header).split(":", 1)[1].strip()
    if not items or len("Authentication-Results: ") + len(value) <= LINE_LENGTH:
        return value
    return ";\n\t".join([authserv_id, *(str(item) for item in items)])


def authserv_id_of(value: str) -> str | None:
    """The authserv-id an existing Authentication-Results value claims (None if unparsable)."""
    try:
        return str(authres.AuthenticationResultsHeader.parse_value(value).authserv_id)
    except Exception:
        head = value.split(";", 1)[0].strip()
        return head.split()[0] if head else None
