"""Render and read Authentication-Results header fields (RFC 8601) with ``authres``."""

from __future__ import annotations

from collections.abc import Sequence

import authres

from milterfilters.verdict import AuthResult


def render_authentication_results(authserv_id: str, results: Sequence[AuthResult]) -> str:
    """The value of one Authentication-Results field carrying ``results``."""
    items = []
    for r in results:
        props = [authres.AuthenticationResultProperty(*p[0].split(".", 1), p[1]) for p in r.properties]
        items.append(
            authres.AuthenticationResult(
                method=r.method,
                result=r.result,
                result_comment=r.comment or None,
                reason=r.reason or None,
                properties=props,
            )
        )
    header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=items)
    return str(header).split(":", 1)[1].strip()


def authserv_id_of(value: str) -> str | None:
    """The authserv-id an existing Authentication-Results value claims (None if unparsable)."""
    try:
        return str(authres.AuthenticationResultsHeader.parse_value(value).authserv_id)
    except Exception:
        head = value.split(";", 1)[0].strip()
        return head.split()[0] if head else None
