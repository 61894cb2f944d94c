"""ARC chain verification (RFC 8617) with dkimpy, and who sealed what.

A forwarder (a mailing list, say) breaks SPF and often DKIM; if it seals the message with
ARC, a receiver that trusts the sealer may take the authentication results the sealer
recorded in its ARC-Authentication-Results instead (the DMARC filter does, for the sealers
it is told to trust).

dkimpy checks the seals and message signatures over the header only; the body hash of each
ARC-Message-Signature comes from the message's shared :class:`BodyHashes` (one pass per
canonicalization, under the byte budget and the deadline). A chain of more than 50 sets
(RFC 8617 4.2.1) fails before any cryptography.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from milterfilters.auth.dkim_body import BodyHashes, BodyHashLimit
from milterfilters.auth.dkim_verify import (
    DEFAULT_MAX_HASHED_BYTES,
    DKIMPY_LOG,
    KeyRecorder,
    PrecomputedBodyHash,
    split_message,
)
from milterfilters.core.context import Message
from milterfilters.core.deadline import NO_DEADLINE, Deadline
from milterfilters.dns import DnsTemporaryError, TxtLookup

_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*;(.*)$", re.DOTALL)
#: a line that may start an ARC field (also matches in a body: only a pre-check)
_ARC_LINE = re.compile(rb"(?im)^arc-[a-z-]*:")
#: RFC 8617 4.2.1: instance numbers run from 1 to 50
MAX_ARC_SETS = 50


class _HeaderArc(PrecomputedBodyHash, dkim.ARC):  # type: ignore[misc]
    """dkimpy's ARC verifier over the header only, body hashes from a :class:`BodyHashes`."""

    def __init__(self, head: bytes, body_hashes: BodyHashes, *, minkey: int) -> None:
        super().__init__(head, logger=DKIMPY_LOG, minkey=minkey)
        self.body_hashes = body_hashes


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


def verify_arc(
    message: bytes,
    lookup_txt: TxtLookup,
    *,
    min_rsa_bits: int = 1024,
    body_hashes: BodyHashes | None = None,
    max_hashed_bytes: int = DEFAULT_MAX_HASHED_BYTES,
    deadline: Deadline = NO_DEADLINE,
) -> ArcOutcome:
    """Validate the ARC chain of ``message`` (RFC 8617 5.2).

    ``none`` with a "not checked" reason when the body hash budget ran out first (never
    ``pass``); raises ``DeadlineExceeded`` when ``deadline`` passes.
    """
    if not _ARC_LINE.search(message):
        return ArcOutcome("none", "")  # no ARC field at all: spare dkimpy's parse of the message
    head, body = split_message(message)
    if body_hashes is None:
        body_hashes = BodyHashes(body, max_bytes=max_hashed_bytes, deadline=deadline)
    try:
        verifier = _HeaderArc(head, body_hashes, minkey=min_rsa_bits)
        if verifier.sorted_arc_headers()[0] > MAX_ARC_SETS:
            return ArcOutcome("fail", f"more than {MAX_ARC_SETS} ARC sets")
        cv, sets, reason = verifier.verify(dnsfunc=KeyRecorder(lookup_txt))
    except DnsTemporaryError as e:
        return ArcOutcome("temperror", f"key lookup failed: {e}")
    except BodyHashLimit as e:
        return ArcOutcome("none", f"chain not checked: {e}")
    except dkim.DKIMException as e:  # what dkim.arc_verify turns into a failed chain
        return ArcOutcome("fail", str(e))
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
