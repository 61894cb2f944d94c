"""SPF (RFC 7208): is the client allowed to send for the MAIL FROM and HELO domains?

Both identities are checked at MAIL FROM (§2.3; the null sender is checked as
postmaster@HELO). Results become findings (``SPF_FAIL``, ``SPF_HELO_PASS``, ...) that the
policy scores; optionally a result of the MAIL FROM identity rejects (550 5.7.23,
RFC 7372) or tempfails (451 4.7.24), at MAIL or at each RCPT, with per-domain overrides.
Trusted networks, trusted forwarders and authenticated clients are not checked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.schema import doc, reply_text
from milterfilters.core.services import Services
from milterfilters.core.verdict import (
    Action,
    AuthResult,
    Finding,
    HeaderAdd,
    HeaderPosition,
    SmtpReply,
    Verdict,
)
from milterfilters.mail.identity import SmtpIdentity, SpfIdentity, smtp_identity
from milterfilters.mail.networks import NetworkSet
from milterfilters.spf.pyspf_adapter import SpfCheck, SpfResultName, check_host
from milterfilters.spf.received_spf import render_received_spf

RejectOrScore = Literal["score", "reject"]
TempfailOrScore = Literal["score", "tempfail"]

RESULTS: tuple[SpfResultName, ...] = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")

_RESULT_OF_SYMBOL = {f"SPF_{r.upper()}": r for r in RESULTS}
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+^_`{|}~-]+)*")


def _is_domain(name: str) -> bool:
    """A dotted host name SPF can check: not an address literal, not a single label."""
    labels = name.rstrip(".").split(".")
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    )


@dataclass(frozen=True)
class SpfDomainPolicy:
    """Overrides for senders in one domain and its subdomains; "inherit" keeps [spf]'s."""

    fail: Literal["inherit", "score", "reject"] = doc("action for fail", "inherit")
    softfail: Literal["inherit", "score", "reject"] = doc("action for softfail", "inherit")
    permerror: Literal["inherit", "score", "reject"] = doc("action for permerror", "inherit")
    temperror: Literal["inherit", "score", "tempfail"] = doc("action for temperror", "inherit")


@dataclass(frozen=True)
class SpfOptions:
    fail: RejectOrScore = doc("MAIL FROM result fail: score only, or reject (550 5.7.23)", "score")
    softfail: RejectOrScore = doc("MAIL FROM result softfail: score only, or reject (550 5.7.23)", "score")
    permerror: RejectOrScore = doc("MAIL FROM result permerror: score only, or reject (550 5.7.24)", "score")
    temperror: TempfailOrScore = doc(
        "MAIL FROM result temperror: score only, or tempfail (451 4.7.24)", "score"
    )
    reject_at: Literal["mail", "rcpt"] = doc(
        "refuse at MAIL FROM, or at each RCPT TO (some clients handle RCPT refusals better)", "mail"
    )
    domains: dict[str, SpfDomainPolicy] = doc(
        'per-domain overrides, e.g. [spf.domains."example.com"] fail = "reject"', default_factory=dict
    )
    check_helo: bool = doc("also check the HELO identity (findings SPF_HELO_*)", True)
    trusted_forwarders: tuple[str, ...] = doc(
        "IPs or networks of forwarders whose mail skips SPF (forwarding breaks SPF)", default_factory=tuple
    )
    trusted_networks: tuple[str, ...] = doc(
        "networks whose clients skip SPF (local submission), besides the enabled [relay] trusted_networks",
        ("127.0.0.0/8", "::1/128"),
    )
    skip_authenticated: bool = doc("SASL-authenticated clients skip SPF", True)
    received_spf_header: bool = doc("add a Received-SPF header (RFC 7208 §9.1)", False)
    default_explanation: str = doc(
        "explanation for fail when the domain publishes no exp= (shown in the reply)",
        "SPF fail - not authorized",
        check=reply_text,
    )

    def validate(self) -> None:
        try:
            NetworkSet(self.trusted_forwarders)
            NetworkSet(self.trusted_networks)
        except ValueError as e:
            raise ValueError(f"bad network: {e}") from None
        for domain in self.domains:
            if not _is_domain(domain):
                raise ValueError(f"domains: {domain!r} is not a domain name")
        if any(ord(c) < 32 for c in self.default_explanation):
            raise ValueError("default_explanation must be one line")


_ACTIONS_FOR: dict[str, tuple[Action, int, str]] = {
    "fail": (Action.REJECT, 550, "5.7.23"),
    "softfail": (Action.REJECT, 550, "5.7.23"),
    "permerror": (Action.REJECT, 550, "5.7.24"),
    "temperror": (Action.TEMPFAIL, 451, "4.7.24"),
}


def _reply_text(result: str, domain: str, explanation: str) -> str:
    """One safe line for the SMTP reply; the explanation comes from the sender's DNS."""
    explanation = "".join(c if 32 <= ord(c) < 127 else "?" for c in explanation)
    text = f"SPF {result} for {domain}: {explanation}" if explanation else f"SPF {result} for {domain}"
    if result == "temperror":
        text += "; try again later"
    return text[:300]


class SpfFilter(Filter):
    """Checks SPF for the MAIL FROM and HELO identities (RFC 7208)."""

    name = "spf"
    Options = SpfOptions
    # Opt-in: with it, the default configuration would query the system's DNS for every
    # message, including in ``milterfilters check`` and in tests.
    enabled_by_default = False
    symbols: ClassVar[dict[str, float]] = {
        "SPF_PASS": -0.5,
        "SPF_FAIL": 3.0,
        "SPF_SOFTFAIL": 1.0,
        "SPF_NEUTRAL": 0.0,
        "SPF_NONE": 0.0,
        "SPF_TEMPERROR": 0.0,
        "SPF_PERMERROR": 1.0,
        "SPF_HELO_PASS": -0.2,
        "SPF_HELO_FAIL": 1.0,
        "SPF_HELO_SOFTFAIL": 0.5,
        "SPF_HELO_NEUTRAL": 0.0,
        "SPF_HELO_NONE": 0.0,
        "SPF_HELO_TEMPERROR": 0.0,
        "SPF_HELO_PERMERROR": 0.5,
    }
    options: SpfOptions

    def __init__(self, options: SpfOptions, services: Services) -> None:
        super().__init__(options, services)
        self._trusted = NetworkSet(options.trusted_networks) + NetworkSet(services.trusted_networks)
        self._forwarders = NetworkSet(options.trusted_forwarders)
        self._receiver = services.authserv_id
        # longest suffix first, so the most specific domain's override wins
        self._domains = sorted(
            ((d.lower().rstrip("."), p) for d, p in options.domains.items()), key=lambda dp: -len(dp[0])
        )

    # -- stages ---------------------------------------------------------------------------

    def mail(self, ctx: Context) -> Verdict | None:
        ip = ctx.connection.ip
        if ip is None or ctx.envelope is None or self._skipped(ctx, ip):
            return None
        identity = smtp_identity(ctx)
        lookups = self.services.resolver.budget()

        def check(spf_identity: SpfIdentity) -> SpfCheck:
            result = check_host(
                str(ip),
                spf_identity,
                identity.helo or "unknown",
                lookups,
                receiver=self._receiver,
                default_explanation=self.options.default_explanation,
                timeout=self.services.resolver.timeout,
            )
            self.services.metrics.inc("spf_results_total", identity=result.identity, result=result.result)
            return result

        findings: list[Finding] = []
        auth_results: list[AuthResult] = []
        main: SpfCheck | None = None
        if identity.spf_sender is not None:
            main = check(identity.spf_sender)
            findings.append(Finding(f"SPF_{main.result.upper()}", main.explanation))
            auth_results.append(_auth_result(main, identity))
        else:
            findings.append(Finding("SPF_NONE", _no_sender_reason(identity)))
        if self.options.check_helo and not identity.null_sender:
            if identity.spf_helo is not None:
                helo_check = check(identity.spf_helo)
                findings.append(Finding(f"SPF_HELO_{helo_check.result.upper()}", helo_check.explanation))
                auth_results.append(_auth_result(helo_check, identity))
            else:
                findings.append(Finding("SPF_HELO_NONE", "HELO is not a domain name"))

        headers: tuple[HeaderAdd, ...] = ()
        if self.options.received_spf_header and main is not None:
            value = render_received_spf(main, str(ip), ctx.helo or "", self._receiver)
            headers = (HeaderAdd("Received-SPF", value, HeaderPosition.TOP),)
        action, reply = Action.CONTINUE, None
        if main is not None and self.options.reject_at == "mail":
            action, reply = self._refusal(main.result, main.domain, main.explanation)
        return Verdict(
            findings=tuple(findings),
            action=action,
            reply=reply,
            headers=headers,
            auth_results=tuple(auth_results),
        )

    def rcpt(self, ctx: Context) -> Verdict | None:
        """With ``reject_at = "rcpt"``, refuse each recipient on the MAIL FROM result."""
        if self.options.reject_at != "rcpt" or ctx.envelope is None:
            return None
        for finding in ctx.findings:
            result = _RESULT_OF_SYMBOL.get(finding.symbol)
            if result is not None:
                checked = smtp_identity(ctx).spf_sender
                action, reply = self._refusal(result, checked.domain if checked else "", finding.detail)
                return Verdict(action=action, reply=reply) if reply else None
        return None

    # -- policy ---------------------------------------------------------------------------

    def _skipped(self, ctx: Context, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.options.skip_authenticated and ctx.is_authenticated:
            return True
        return ip in self._trusted or ip in self._forwarders

    def action_for(self, result: str, domain: str) -> str:
        """``score``, ``reject`` or ``tempfail`` for a MAIL FROM ``result`` of ``domain``."""
        if result not in _ACTIONS_FOR:
            return "score"
        domain = domain.lower().rstrip(".")
        for suffix, policy in self._domains:
            if domain == suffix or domain.endswith("." + suffix):
                override = getattr(policy, result)
                if override != "inherit":
                    return str(override)
        return str(getattr(self.options, result))

    def _refusal(self, result: str, domain: str, explanation: str) -> tuple[Action, SmtpReply | None]:
        if self.action_for(result, domain) == "score":
            return Action.CONTINUE, None
        action, code, enhanced = _ACTIONS_FOR[result]
        return action, SmtpReply(code, enhanced, _reply_text(result, domain, explanation))


def _no_sender_reason(identity: SmtpIdentity) -> str:
    """Why there is no MAIL FROM identity to check (RFC 7208 §4.3: the result is none)."""
    if identity.null_sender:
        return "null sender and HELO is not a domain name"
    if identity.sender is None:
        return f"MAIL FROM is not an RFC 5321 address: {identity.sender_error}"
    return "MAIL FROM domain is not a domain name"


def _auth_result(check: SpfCheck, identity: SmtpIdentity) -> AuthResult:
    """``spf=fail smtp.mailfrom=user@example.com`` or ``spf=pass smtp.helo=mx.example.com``.

    The mailbox is named only when its local part is a plain ASCII dot-atom; otherwise the
    domain alone (RFC 8601 §2.7.2 allows either), never a local part a sender chose to look
    like something else.
    """
    if check.identity == "helo":
        return AuthResult("spf", check.result, properties=(("smtp.helo", check.domain),))
    local = identity.sender.local_part if identity.sender is not None else ""
    value = f"{local}@{check.domain}" if _DOT_ATOM.fullmatch(local) else check.domain
    return AuthResult("spf", check.result, properties=(("smtp.mailfrom", value),))
