"""ARC chain verification (RFC 8617) with dkimpy, and who sealed what.

A forwarder (a mailing list, say) breaks SPF and often DKIM; if it seals the message with
ARC, a receiver that trusts the sealer may take the authentication results the sealer
recorded in its ARC-Authentication-Results instead (the DMARC filter does, for the sealers
it is told to trust).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from milterfilters.auth.dkim_verify import DKIMPY_LOG, KeyRecorder
from milterfilters.core.context import Message
from milterfilters.dns import DnsTemporaryError, TxtLookup

_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*;(.*)$", re.DOTALL)
#: a line that may start an ARC field (also matches in a body: only a pre-check)
_ARC_LINE = re.compile(rb"(?im)^arc-[a-z-]*:")


@dataclass(frozen=True)
class ArcSet:
    """One ARC set: its instance, the sealer's domain and what the sealer recorded."""

    instance: int
    sealer: str
    authentication_results: str  # the ARC-Authentication-Results value after "i=N;"


@dataclass(frozen=True)
class ArcOutcome:
    """The chain's validation status (``pass``, ``fail``, ``none``, ``temperror``)."""

    result: str
    reason: str = ""
    sealers: tuple[str, ...] = ()  # newest first


def verify_arc(message: bytes, lookup_txt: TxtLookup, *, min_rsa_bits: int = 1024) -> ArcOutcome:
    """Validate the ARC chain of ``message`` (RFC 8617 5.2)."""
    if not _ARC_LINE.search(message):
        return ArcOutcome("none", "")  # no ARC field at all: spare dkimpy's parse of the message
    try:
        cv, sets, reason = dkim.arc_verify(
            message, logger=DKIMPY_LOG, dnsfunc=KeyRecorder(lookup_txt), minkey=min_rsa_bits
        )
    except DnsTemporaryError as e:
        return ArcOutcome("temperror", f"key lookup failed: {e}")
    except (ValueError, TypeError, IndexError) as e:  # malformed input dkimpy did not anticipate
        return ArcOutcome("fail", f"malformed ARC set: {type(e).__name__}")
    sealers = tuple(
        s["as-domain"].decode("ascii", "replace").lower()
        for s in sets
        if isinstance(s.get("as-domain"), bytes)
    )
    if cv == dkim.CV_Pass:
        return ArcOutcome("pass", "", sealers)
    if cv == dkim.CV_None:
        return ArcOutcome("none", "")
    # cv is CV_Fail, or None when a sealer already reported the chain failed
    return ArcOutcome("fail", str(reason), sealers)


def arc_sets(message: Message) -> tuple[ArcSet, ...]:
    """The ARC sets in the header, oldest first (trust them only after ``verify_arc`` passed)."""
    sealers: dict[int, str] = {}
    results: dict[int, str] = {}
    for field in message.headers:
        name = field.name.lower()
        if name == "arc-seal":
            try:
                tags = parse_tag_value(field.value.encode("utf-8", "surrogateescape"))
                sealers[int(tags[b"i"])] = tags[b"d"].decode("ascii", "replace").lower()
            except (InvalidTagValueList, KeyError, ValueError):
                continue
        elif name == "arc-authentication-results":
            m = _INSTANCE.match(field.value)
            if m:
                results[int(m.group(1))] = m.group(2).strip()
    return tuple(ArcSet(i, sealers[i], results.get(i, "")) for i in sorted(sealers) if i in results)
