"""Remove Authentication-Results fields that claim to be ours (RFC 8601 5).

Downstream filters and mail clients trust an Authentication-Results field by its authserv-id.
A sender can write ``Authentication-Results: <our id>; dkim=pass`` into a message; unless it
is removed, it sits next to ours and claims a check we never made. Fields with any other
authserv-id are kept: they are another ADMD's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import authres

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, HeaderDelete, Verdict

FIELD = "Authentication-Results"

def authserv_id_of(value: str) -> str | None:
    """The authserv-id an existing Authentication-Results value claims (None if unparsable)."""
    try:
        return str(authres.AuthenticationResultsHeader.parse_value(value).authserv_id)
    except Exception:
        head = value.split(";", 1)[0].strip()
        return head.split()[0] if head else None



@dataclass(frozen=True)


class AuthresForgeryOptions:
    also_ours: tuple[str, ...] = doc(
        "more authserv-ids of this ADMD to remove (other hosts that stamp results for the same "
        "domain); [milter] authserv_id is always included",
        default_factory=tuple,
    )


class AuthresForgeryFilter(Filter):
    """Deletes incoming Authentication-Results fields that carry our authserv-id."""

    name = "authres_forgery"
    Options = AuthresForgeryOptions
    options: AuthresForgeryOptions
    symbols: ClassVar[dict[str, float]] = {"AUTHRES_FORGED": 1.0}
    needs_headers = True

    def __init__(self, options: AuthresForgeryOptions, services: Services) -> None:
        super().__init__(options, services)
        own = services.authserv_id
        self.our_ids = frozenset(i.lower() for i in (own, *options.also_ours))

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        deletions = []
        claimed_ids = set()
        occurrence = 0
        for field in ctx.message.headers:
            if field.name.lower() != FIELD.lower():
                continue
            occurrence += 1
            claimed = authserv_id_of(field.value)
            if claimed is not None and claimed.lower() in self.our_ids:
                deletions.append(HeaderDelete(FIELD, occurrence))
                claimed_ids.add(claimed)
        if not deletions:
            return None
        detail = f"removed {len(deletions)} field(s) claiming authserv-id {', '.join(sorted(claimed_ids))}"
        return Verdict(findings=(Finding("AUTHRES_FORGED", detail),), headers=tuple(deletions))
