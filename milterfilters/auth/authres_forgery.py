"""Remove incoming header fields that claim to be ours: forged results and forged verdicts.

Downstream filters and mail clients trust an Authentication-Results field by its authserv-id
(RFC 8601 5). A sender can write ``Authentication-Results: <our id>; dkim=pass`` into a
message; unless it is removed, it sits next to ours and claims a check we never made. The
authserv-id is compared after RFC 8601 parsing: comments and folding white space skipped, a
quoted-string unquoted, case and a trailing dot ignored (``"MX.Example.org."`` is ours), and
read a second way, as a naive reader would, so that a field either reading takes for ours
goes. Fields with any other authserv-id are kept: they are another ADMD's business.

Verdict headers get the same treatment: every incoming ``X-Milterfilters-*`` field is removed,
and so are the usual spam-status fields (``X-Spam-Flag``, ``X-Spam-Status``, ...; the list is
configurable), so that a verdict header on delivered mail is always ours.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from milterfilters.core.context import Context, HeaderField
from milterfilters.core.filter import Filter
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, HeaderDelete, Verdict

FIELD = "Authentication-Results"
#: header fields of our own namespace: whatever arrives under it is forged
OWN_PREFIX = "x-milterfilters-"
SPAM_STATUS_FIELDS = ("X-Spam-Flag", "X-Spam-Status", "X-Spam-Score", "X-Spam-Level", "X-Spam-Report")
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: dots a reader may take for "." (ideographic, full-width, half-width ideographic)
_DOT_LOOKALIKES = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_NAMES_IN_DETAIL = 5
_TOKEN = re.compile(r'[^\s;()"]*')
_NAME_CHARS = 64


def normalize_authserv_id(text: str) -> str:
    """``text`` as compared: NFKC, case-folded, look-alike dots made dots, trailing dots gone."""
    return unicodedata.normalize("NFKC", text).translate(_DOT_LOOKALIKES).casefold().rstrip(".")


def _skip_cfws(value: str, i: int) -> int:
    """The index after the folding white space and (nested) comments at ``value[i:]``."""
    depth = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and depth:
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth and c not in " \t\r\n":
            return i
        i += 1
    return i


def _quoted_string(value: str, i: int) -> str:
    """The content of the quoted-string opening at ``value[i]`` (unterminated: to the end)."""
    out = []
    i += 1
    while i < len(value) and value[i] != '"':
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out)


def strict_authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value read as RFC 8601 says
    (``[CFWS] authserv-id``, a token or a quoted-string), not yet normalised."""
    i = _skip_cfws(value, 0)
    if value[i : i + 1] == '"':
        return _quoted_string(value, i)
    m = _TOKEN.match(value, i)
    return m.group(0) if m else ""


def authserv_id_of(value: str) -> str | None:
    """The authserv-id an Authentication-Results value claims, read per RFC 8601 (None if none)."""
    return strict_authserv_id(value) or None


def naive_authserv_id(value: str) -> str:
    """The authserv-id as a careless reader takes it: the first word before ``;``, with
    comments dropped and quotes stripped."""
    head = re.sub(r"\([^()]*\)", " ", value.split(";", 1)[0])
    words = head.replace('"', " ").split()
    return words[0] if words else ""


def claimed_ids(value: str) -> frozenset[str]:
    """Every normalised authserv-id an Authentication-Results value can be read to claim."""
    readings = (strict_authserv_id(value), naive_authserv_id(value))
    return frozenset(normalize_authserv_id(r) for r in readings if r.strip())


def _field_name(field: HeaderField) -> str:
    """The field's name as MTAs match it (case-insensitive, white space before the colon dropped)."""
    return field.name.rstrip(" \t").lower()


@dataclass(frozen=True)
class AuthresForgeryOptions:
    also_ours: tuple[str, ...] = doc(
        "more authserv-ids of this ADMD to remove (other hosts that stamp results for the same "
        "domain); [milter] authserv_id is always included",
        default_factory=tuple,
    )
    remove_fields: tuple[str, ...] = doc(
        "incoming header fields removed from every message, so that a spam verdict on delivered "
        "mail is always ours (X-Milterfilters-* fields are always removed; [] keeps these)",
        SPAM_STATUS_FIELDS,
    )

    def validate(self) -> None:
        bad = [n for n in self.remove_fields if not _FIELD_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"remove_fields: {bad[0]!r} is not a header field name")


class AuthresForgeryFilter(Filter):
    """Deletes incoming Authentication-Results fields that carry our authserv-id, and
    incoming verdict header fields (ours by name, and the configured spam-status fields)."""

    name = "authres_forgery"
    Options = AuthresForgeryOptions
    options: AuthresForgeryOptions
    symbols: ClassVar[dict[str, float]] = {"AUTHRES_FORGED": 1.0, "VERDICT_HEADER_REMOVED": 0.0}
    needs_headers = True

    def __init__(self, options: AuthresForgeryOptions, services: Services) -> None:
        super().__init__(options, services)
        own = services.authserv_id
        self.our_ids = frozenset(normalize_authserv_id(i) for i in (own, *options.also_ours))
        self.removed_names = frozenset(n.lower() for n in options.remove_fields)

    def is_verdict_field(self, name: str) -> bool:
        """Whether an incoming field called ``name`` (lower case) pretends to be our verdict."""
        return name.startswith(OWN_PREFIX) or name in self.removed_names

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        forged: list[HeaderDelete] = []
        verdicts: list[HeaderDelete] = []
        claimed: set[str] = set()
        occurrences: dict[str, int] = {}
        for field in ctx.message.headers:
            name = _field_name(field)
            occurrences[name] = occurrence = occurrences.get(name, 0) + 1
            if name == FIELD.lower():
                ours = claimed_ids(field.value) & self.our_ids
                if ours:
                    forged.append(HeaderDelete(FIELD, occurrence))
                    claimed |= ours
            elif self.is_verdict_field(name):
                verdicts.append(HeaderDelete(field.name.rstrip(" \t"), occurrence))
        findings = []
        if forged:
            ids = ", ".join(sorted(claimed))
            detail = f"removed {len(forged)} field(s) claiming authserv-id {ids}"
            findings.append(Finding("AUTHRES_FORGED", detail))
        if verdicts:
            names = _bounded(sorted({d.name.lower() for d in verdicts}))
            detail = f"removed {len(verdicts)} incoming field(s): {names}"
            findings.append(Finding("VERDICT_HEADER_REMOVED", detail))
        if not findings:
            return None
        return Verdict(findings=tuple(findings), headers=tuple(forged + verdicts))


def _bounded(names: Iterable[str]) -> str:
    """At most a few names, and how many more."""
    names = [n[:_NAME_CHARS] for n in names]
    shown = ", ".join(names[:_NAMES_IN_DETAIL])
    return shown + (f" and {len(names) - _NAMES_IN_DETAIL} more" if len(names) > _NAMES_IN_DETAIL else "")
