"""DMARC: is the author domain (RFC5322.From) authenticated by aligned SPF or DKIM?

Reads the SPF result (from MAIL FROM) and the DKIM results (from the dkim filter, which runs
before this one at end of data) out of the context, so it must follow both in the chain.
A message with several author domains is judged by the strictest of their results
(RFC 7489 6.6.1); one with no From, or several From fields, is flagged and may be refused.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import authres

from milterfilters.auth.arc import arc_sets
from milterfilters.auth.dmarc_policy import DmarcResult, authenticated_domains, authors, evaluate, strictest
from milterfilters.auth.inbound import InboundFilter
from milterfilters.core.context import Context, Message
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Action, AuthResult, Finding, SmtpReply, Verdict
from milterfilters.dns import budgeted_txt_lookup

log = logging.getLogger("milterfilters.dmarc")

_FAIL_SYMBOLS = {
    "reject": "DMARC_FAIL_REJECT",
    "quarantine": "DMARC_FAIL_QUARANTINE",
    "none": "DMARC_FAIL_NONE",
}
_ACTIONS = {"reject": Action.REJECT, "quarantine": Action.QUARANTINE, "tag": Action.TAG, "score": None}


@dataclass(frozen=True)
class DmarcOptions:
    reject_policy_action: Literal["reject", "quarantine", "tag", "score"] = doc(
        "what a failing message under p=reject gets: reject (550 5.7.1), quarantine, tag, "
        "or score (only the DMARC_FAIL_REJECT symbol)",
        "reject",
    )
    quarantine_policy_action: Literal["quarantine", "tag", "score"] = doc(
        "what a failing message under p=quarantine gets", "tag"
    )
    malformed_from: Literal["score", "reject"] = doc(
        "a message with no From field or several: score it (DMARC_NO_FROM / DMARC_MULTIPLE_FROM) "
        "or reject it (550 5.7.1, RFC 5322 requires exactly one)",
        "score",
    )
    unusable_from: Literal["reject", "score"] = doc(
        "a From whose author domain cannot be read with certainty (no address, an encoded word or "
        "look-alike @ hiding it, group syntax with no address, an invalid domain, a value that "
        "parsers read differently): reject it (550 5.7.1, RFC 7489 6.6.1) or score it as a "
        "failure (DMARC_UNUSABLE_FROM); it never passes clean",
        "reject",
    )
    trusted_arc_sealers: tuple[str, ...] = doc(
        "ARC sealer domains (e.g. a mailing-list host) whose recorded dmarc=pass overrides a DMARC "
        "failure caused by forwarding, when the ARC chain validates",
        default_factory=tuple,
    )
    check_outbound: bool = doc(
        "also judge mail from authenticated clients and the relay filter's trusted networks", False
    )


class DmarcFilter(InboundFilter):
    """Applies the author domain's DMARC policy (p, sp, pct) using SPF and DKIM alignment."""

    name = "dmarc"
    enabled_by_default = False  # asks DNS for every message: enabled in the configuration
    Options = DmarcOptions
    options: DmarcOptions
    symbols: ClassVar[dict[str, float]] = {
        "DMARC_PASS": -0.5,
        "DMARC_FAIL_REJECT": 4.0,
        "DMARC_FAIL_QUARANTINE": 2.0,
        "DMARC_FAIL_NONE": 0.5,
        "DMARC_NONE": 0.0,
        "DMARC_TEMPERROR": 0.0,
        "DMARC_PERMERROR": 0.0,
        "DMARC_ARC_OVERRIDE": 0.0,
        "DMARC_NO_FROM": 2.0,
        "DMARC_MULTIPLE_FROM": 2.0,
        "DMARC_UNUSABLE_FROM": 4.0,
    }
    needs_headers = True
    #: DMARC reads the DKIM results found at end of data
    after = ("dkim",)

    def __init__(self, options: DmarcOptions, services: Services) -> None:
        super().__init__(options, services)
        self.trusted_sealers = frozenset(s.lower().rstrip(".") for s in options.trusted_arc_sealers)
        #: returns a number in [0, 1) to apply a record's pct=
        self.sample = random.random

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        if self.skips(ctx):
            return None
        found = authors(ctx.message)
        findings: list[Finding] = []
        if found.field_count != 1:
            symbol = "DMARC_NO_FROM" if found.field_count == 0 else "DMARC_MULTIPLE_FROM"
            findings.append(Finding(symbol, f"{found.field_count} From header fields"))
            if self.options.malformed_from == "reject":
                return Verdict(
                    findings=tuple(findings),
                    action=Action.REJECT,
                    reply=SmtpReply(550, "5.7.1", "Message must have exactly one From header field"),
                )
        if found.unusable:
            return self._unusable_from(found.unusable, findings)
        if not found.domains:
            return Verdict(
                findings=tuple(findings) + (Finding("DMARC_PERMERROR", "no From address"),),
                auth_results=(AuthResult("dmarc", "permerror", reason="no RFC5322.From address"),),
            )
        identifiers = authenticated_domains(ctx)
        lookup = budgeted_txt_lookup(self.services)
        result = strictest(
            [
                evaluate(
                    domain,
                    identifiers,
                    lookup_txt=lookup,
                    sample=self.sample,
                )
                for domain in found.domains
            ]
        )
        return self._verdict(ctx, result, findings)

    def _verdict(self, ctx: Context, r: DmarcResult, findings: list[Finding]) -> Verdict:
        assert ctx.message is not None
        if r.result == "fail":
            arc_result, sealer = self._trusted_sealer_pass(ctx, ctx.message, r.author_domain)
            if arc_result == "pass":
                return self._arc_override(r, sealer, findings)
            if arc_result == "temperror":
                r = replace(r, result="temperror", reason=f"ARC chain sealed by {sealer} unverified (DNS)")
        props = (("header.from", r.author_domain),) if r.author_domain else ()
        comment = f"p={r.policy} dis={r.disposition}" if r.record_domain else ""
        detail = f"header.from={r.author_domain or '?'}" + (f" {comment}" if comment else "")
        detail += f": {r.reason}" if r.reason else ""
        auth = AuthResult("dmarc", r.result, properties=props, reason=r.reason, comment=comment)
        configured = {
            "reject": self.options.reject_policy_action,
            "quarantine": self.options.quarantine_policy_action,
        }.get(r.disposition, "score")
        if r.result == "temperror" and configured == "reject":
            # it might have passed: neither reject nor let a possible spoof through now
            findings.append(Finding("DMARC_TEMPERROR", detail))
            reply = SmtpReply(
                451, "4.7.1", f"DMARC check for {r.author_domain} failed temporarily, try later"
            )
            return Verdict(
                findings=tuple(findings), action=Action.TEMPFAIL, reply=reply, auth_results=(auth,)
            )
        if r.result != "fail":
            findings.append(Finding(f"DMARC_{r.result.upper()}", detail))
            return Verdict(findings=tuple(findings), auth_results=(auth,))
        findings.append(Finding(_FAIL_SYMBOLS[r.disposition], detail))
        action = _ACTIONS[configured]
        if action is None:
            return Verdict(findings=tuple(findings), auth_results=(auth,))
        if action is not Action.REJECT:
            return Verdict(findings=tuple(findings), action=action, auth_results=(auth,))
        refusal = SmtpReply(550, "5.7.1", f"Message rejected by the DMARC policy of {r.author_domain}")
        return Verdict(findings=tuple(findings), action=action, reply=refusal, auth_results=(auth,))

    def _unusable_from(self, why: str, findings: list[Finding]) -> Verdict:
        """A From with no author domain DMARC can judge: refused, or scored as a failure."""
        findings.append(Finding("DMARC_UNUSABLE_FROM", why))
        auth = (AuthResult("dmarc", "permerror", reason="no usable RFC5322.From domain"),)
        if self.options.unusable_from == "score":
            return Verdict(findings=tuple(findings), auth_results=auth)
        reply = SmtpReply(550, "5.7.1", "Message rejected: the From header field has no usable author domain")
        return Verdict(findings=tuple(findings), action=Action.REJECT, reply=reply, auth_results=auth)

    @staticmethod
    def _arc_override(r: DmarcResult, sealer: str, findings: list[Finding]) -> Verdict:
        detail = f"header.from={r.author_domain} p={r.policy}; forwarded, {sealer} recorded dmarc=pass"
        findings.append(Finding("DMARC_ARC_OVERRIDE", detail))
        auth = AuthResult(
            "dmarc",
            "fail",
            properties=(("header.from", r.author_domain),),
            reason="trusted ARC sealer",
            comment=f"p={r.policy} dis=none override=arc:{sealer}",
        )
        return Verdict(findings=tuple(findings), auth_results=(auth,))

    def _trusted_sealer_pass(self, ctx: Context, message: Message, author_domain: str) -> tuple[str, str]:
        """(our arc= result, sealer) when a trusted sealer vouches for ``author_domain``.

        The override is safe only when (RFC 8617 7.2 leaves the trust decision to us):

        * the chain validated here (``pass``); when it could not be checked now
          (``temperror``) the override is merely possible;
        * every ARC set after the vouching one was sealed by a trusted sealer too (an
          untrusted hop may have rewritten anything, From included, and sealed over it);
        * the trusted sealer recorded ``dmarc=pass`` for *this* author domain, not for the
          domain the From named when it passed through.
        """
        trusted = self.trusted_sealers
        arc = next((r.result for r in ctx.auth_results if r.method == "arc"), "none")
        if not trusted or arc not in ("pass", "temperror"):
            return "", ""
        sets = arc_sets(message)
        if [s.instance for s in sets] != list(range(1, len(sets) + 1)):
            return "", ""  # a gap or a repeat: not a chain we can read as dkimpy did
        for arc_set in reversed(sets):
            if arc_set.sealer not in trusted:
                return "", ""  # an untrusted hop came after every older set
            if recorded_dmarc_pass(arc_set.authentication_results, author_domain):
                return arc, arc_set.sealer
        return "", ""


def recorded_dmarc_pass(authentication_results: str, author_domain: str) -> bool:
    """Whether an ARC-Authentication-Results value records ``dmarc=pass`` for
    ``header.from=author_domain`` (and no other DMARC result for that domain)."""
    try:
        header = authres.AuthenticationResultsHeader.parse_value(authentication_results)
    except Exception:  # authres raises assorted errors on bad input
        return False
    wanted = _domain_key(author_domain)
    verdicts = set()
    for result in header.results:
        if str(result.method).lower() != "dmarc":
            continue
        domains = {
            _domain_key(str(p.value))
            for p in result.properties
            if f"{p.type}.{p.name}".lower() == "header.from"
        }
        if wanted in domains:
            verdicts.add(str(result.result).lower())
    return verdicts == {"pass"}


def _domain_key(domain: str) -> str:
    return domain.strip().lower().rstrip(".")
