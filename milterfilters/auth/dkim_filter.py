"""DKIM verification of every signature on a message, and ARC chain validation.

One finding per signature (``DKIM_PASS``, ``DKIM_FAIL``, ``DKIM_TEMPERROR``,
``DKIM_PERMERROR``; ``DKIM_NONE`` for an unsigned message) naming the signing domain and
selector, and one ``dkim=`` result per signature in Authentication-Results
(``header.d``, ``header.s``, ``header.b``). Outbound mail is not verified by default.

Bounded cost: at most ``max_signatures`` signatures are checked and at most
``max_hashed_bytes`` canonical body bytes hashed per message (DKIM and ARC share the hashes);
what is skipped is reported as ``DKIM_UNVERIFIED``/``ARC_UNVERIFIED``, never as a pass. The
work stops at the filter's ``timeout`` (``ctx.deadline``), checked between body chunks,
signatures and DNS lookups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from milterfilters.auth.arc import ArcOutcome, verify_arc
from milterfilters.auth.dkim_body import BodyHashes
from milterfilters.auth.dkim_verify import DEFAULT_MAX_HASHED_BYTES, SignatureResult, verify_message
from milterfilters.auth.inbound import InboundFilter
from milterfilters.core.context import Context
from milterfilters.core.deadline import Deadline
from milterfilters.core.schema import doc
from milterfilters.core.verdict import AuthResult, Finding, Verdict
from milterfilters.dns import TxtLookup, budgeted_txt_lookup

_SYMBOLS = {
    "pass": "DKIM_PASS",
    "fail": "DKIM_FAIL",
    "temperror": "DKIM_TEMPERROR",
    "permerror": "DKIM_PERMERROR",
    "neutral": "DKIM_UNVERIFIED",
}
#: ends the DKIM_UNSIGNED_BODY detail of a length-limited signature not counted as a pass
_NOT_A_PASS = "; not counted as a pass"


def length_limited_passes(findings: Iterable[Finding]) -> Counter[str]:
    """The ``d=`` domains of passing signatures whose ``l=`` leaves part of the body unsigned
    (content can be appended under them), each with how many such signatures it has.

    Reads the ``DKIM_UNSIGNED_BODY`` findings this filter reports (``d=<domain> s=... : ...``).
    """
    out: Counter[str] = Counter()
    for f in findings:
        if f.symbol == "DKIM_UNSIGNED_BODY" and not f.detail.endswith(_NOT_A_PASS):
            out[f.detail.split(" ", 1)[0].removeprefix("d=")] += 1
    return out


@dataclass(frozen=True)
class DkimOptions:
    min_rsa_bits: int = doc("smallest RSA key accepted; RFC 8301 forbids less than 1024", 1024)
    clock_skew: int = doc("seconds of clock difference tolerated for t= (future) and x= (expiry)", 300)
    max_signatures: int = doc("signatures verified per message; further ones are not checked", 10)
    max_hashed_bytes: int = doc(
        "canonical body bytes hashed per message, DKIM and ARC together (each canonicalization "
        "is hashed once for all signatures); a signature whose body hash lies beyond is reported "
        "as DKIM_UNVERIFIED, never as a pass",
        DEFAULT_MAX_HASHED_BYTES,
    )
    accept_length_limited: bool = doc(
        "count a signature whose l= leaves part of the body unsigned as a pass "
        "(content can be appended to such a message); false reports it as dkim=policy",
        True,
    )
    arc: bool = doc("validate the ARC chain (RFC 8617) and report arc= in Authentication-Results", True)
    check_outbound: bool = doc(
        "also verify mail from authenticated clients and the relay filter's trusted networks", False
    )

    def validate(self) -> None:
        if self.min_rsa_bits < 1024:
            raise ValueError("min_rsa_bits below 1024 is forbidden by RFC 8301")
        if self.clock_skew < 0 or self.max_signatures < 1:
            raise ValueError("clock_skew must be >= 0 and max_signatures >= 1")
        if self.max_hashed_bytes < 1:
            raise ValueError("max_hashed_bytes must be >= 1")


class DkimFilter(InboundFilter):
    """Verifies DKIM signatures (rsa-sha256, ed25519-sha256) and the ARC chain."""

    name = "dkim"
    enabled_by_default = False  # asks DNS for every signed message: enabled in the configuration
    Options = DkimOptions
    options: DkimOptions
    symbols: ClassVar[dict[str, float]] = {
        "DKIM_PASS": -0.2,
        "DKIM_FAIL": 1.0,
        "DKIM_TEMPERROR": 0.0,
        "DKIM_PERMERROR": 0.0,
        "DKIM_NONE": 0.0,
        "DKIM_UNSIGNED_BODY": 1.0,
        "DKIM_UNVERIFIED": 0.0,
        "ARC_PASS": 0.0,
        "ARC_FAIL": 1.0,
        "ARC_TEMPERROR": 0.0,
        "ARC_UNVERIFIED": 0.0,
    }
    needs_body = True

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        if self.skips(ctx):
            return None
        if ctx.message.body_truncated:
            reason = "message larger than [milter] max_body_bytes"
            return Verdict(
                findings=(Finding("DKIM_UNVERIFIED", reason),),
                auth_results=(AuthResult("dkim", "neutral", reason=reason),),
            )
        head = ctx.message.raw_head()
        deadline = ctx.deadline
        lookup = _deadline_lookup(budgeted_txt_lookup(self.services), deadline)
        hashes = BodyHashes(ctx.message.body, max_bytes=self.options.max_hashed_bytes, deadline=deadline)
        results = verify_message(
            head,
            lookup,
            now=self.services.clock(),
            min_rsa_bits=self.options.min_rsa_bits,
            clock_skew=self.options.clock_skew,
            max_signatures=self.options.max_signatures,
            body_hashes=hashes,
            deadline=deadline,
        )
        findings: list[Finding] = []
        auth: list[AuthResult] = []
        if not results:
            findings.append(Finding("DKIM_NONE", "message is not signed"))
            auth.append(AuthResult("dkim", "none"))
        for r in results:
            f, a = self._report(r)
            findings += f
            auth.append(a)
        if self.options.arc:
            arc = verify_arc(
                head, lookup, min_rsa_bits=self.options.min_rsa_bits, body_hashes=hashes, deadline=deadline
            )
            findings += _arc_findings(arc)
            auth.append(AuthResult("arc", arc.result, reason=arc.reason, comment=" ".join(arc.sealers)))
        return Verdict(findings=tuple(findings), auth_results=tuple(auth))

    def _report(self, r: SignatureResult) -> tuple[list[Finding], AuthResult]:
        result = r.result
        findings = []
        if r.unsigned_body_bytes:
            if result == "pass" and not self.options.accept_length_limited:
                result = "policy"
            detail = f"{r.label}: l= leaves {r.unsigned_body_bytes} body bytes unsigned"
            findings.append(Finding("DKIM_UNSIGNED_BODY", detail + (_NOT_A_PASS if result != "pass" else "")))
        symbol = "DKIM_FAIL" if result == "policy" else _SYMBOLS[result]
        detail = f"{r.label}" + (f": {r.reason}" if r.reason else "")
        findings.insert(0, Finding(symbol, detail))
        props = tuple(
            (k, v)
            for k, v in (("header.d", r.domain), ("header.s", r.selector), ("header.b", r.signature_prefix))
            if v
        )
        comment = f"{r.key_bits}-bit key" if result == "pass" and r.key_bits else ""
        return findings, AuthResult("dkim", result, properties=props, reason=r.reason, comment=comment)


def _arc_findings(arc: ArcOutcome) -> list[Finding]:
    """ARC_PASS/FAIL/TEMPERROR, ARC_UNVERIFIED for a chain left unchecked, none for no chain."""
    detail = f"{' '.join(arc.sealers)} {arc.reason}".strip()
    if arc.result != "none":
        return [Finding(f"ARC_{arc.result.upper()}", detail)]
    return [Finding("ARC_UNVERIFIED", detail)] if arc.reason else []


def _deadline_lookup(lookup: TxtLookup, deadline: Deadline) -> TxtLookup:
    """``lookup`` that first checks ``deadline`` (each lookup is bounded by ``[dns] timeout``)."""

    def checked(name: str) -> list[bytes]:
        deadline.check("DKIM key lookup")
        return lookup(name)

    return checked
