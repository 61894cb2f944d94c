"""The SMTP identities of a transaction — MAIL FROM and HELO — as typed parts.

Every filter that reads who the client says it is reads it here, through the RFC 5321
parser (:mod:`milterfilters.mail.addresses`), never from the raw strings: a quoted local
part may hold ``@``, ``;`` or ``=`` (``"x@y"@paypal.com`` is a valid path whose domain is
``paypal.com``), and a HELO name is any text the client typed.

* :func:`helo_domain` — the HELO name as a normalized domain, or ``None`` when it is not a
  syntactically valid multi-label domain name (an address literal, a bare word, garbage);
* :func:`smtp_identity` / :class:`SmtpIdentity` — both identities of a context, with the
  SPF identities RFC 7208 §2.3-2.4 and §4.3 derive from them (``postmaster`` for an empty
  local part and for the HELO identity; the null sender checked as postmaster@HELO).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from milterfilters.core.context import Context
from milterfilters.mail.addresses import (
    Address,
    AddressSyntaxError,
    normalize_domain,
    parse_reverse_path,
)

__all__ = [
    "SmtpIdentity",
    "SpfIdentity",
    "dns_domain",
    "helo_domain",
    "lenient_spf_sender",
    "parse_identity",
    "smtp_identity",
]

#: RFC 7208 §4.3: the local part SPF uses when there is none
POSTMASTER = "postmaster"


def dns_domain(name: str) -> str | None:
    """``name`` normalized (lower case, A-labels, no trailing dot) when it is a domain name
    SPF can evaluate: multi-label, LDH labels, not an IP address written as labels; else None."""
    if not name or name.startswith("["):
        return None
    try:
        domain = normalize_domain(name)
    except AddressSyntaxError:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return None
    return domain


def helo_domain(helo: str | None) -> str | None:
    """The HELO/EHLO name as a normalized domain, or None when it is not a domain name."""
    return dns_domain(helo.strip()) if helo else None


@dataclass(frozen=True)
class SpfIdentity:
    """One identity for SPF's check_host() (RFC 7208 §4.1): ``local@domain`` from typed parts.

    ``kind`` is ``"mailfrom"`` or ``"helo"``; ``local_part`` is the unquoted local part
    (``postmaster`` when there is none), ``domain`` a normalized DNS name.
    """

    kind: Literal["mailfrom", "helo"]
    local_part: str
    domain: str

    @property
    def sender(self) -> str:
        """``local@domain``, the <sender> of check_host() (not a quoted SMTP path)."""
        return f"{self.local_part}@{self.domain}"


@dataclass(frozen=True)
class SmtpIdentity:
    """MAIL FROM and HELO of one transaction, parsed.

    ``sender`` is the parsed reverse-path (None for the null sender and for a path that
    does not parse; ``sender_error`` then says why), ``helo`` the HELO name as a normalized
    domain (None when it is not one). ``unparsed_sender`` is what SPF still checks for a
    path that does not parse (see :func:`lenient_spf_sender`).
    """

    sender: Address | None
    helo: str | None
    null_sender: bool
    sender_error: str = ""
    unparsed_sender: SpfIdentity | None = None

    @property
    def sender_domain(self) -> str | None:
        """The MAIL FROM domain as a DNS name (None for an address literal, a single label,
        the null sender or an unparsable path)."""
        return dns_domain(self.sender.domain) if self.sender is not None else None

    @property
    def spf_sender(self) -> SpfIdentity | None:
        """What SPF checks for MAIL FROM (RFC 7208 §2.4): the parsed sender, or for the null
        sender postmaster@HELO (recorded as the HELO identity, as RFC 7489 §3.1.2 reads it);
        None when there is no domain SPF could evaluate (§4.3: the result is none)."""
        if self.null_sender:
            return self.spf_helo
        if self.sender is None:
            return self.unparsed_sender
        domain = self.sender_domain
        if domain is None:
            return None
        return SpfIdentity("mailfrom", self.sender.local_part or POSTMASTER, domain)

    @property
    def spf_helo(self) -> SpfIdentity | None:
        """The HELO identity (RFC 7208 §2.3): postmaster@HELO when HELO is a domain name."""
        return SpfIdentity("helo", POSTMASTER, self.helo) if self.helo else None


def lenient_spf_sender(raw: str) -> SpfIdentity | None:
    """The SPF identity of a MAIL FROM the RFC 5321 parser refused (``@example.net``,
    ``Macro Error@example.com``: only an MTA without strict envelope syntax lets them in).

    A domain holds no ``@``, so the domain is what follows the last one, and it must be a
    domain name; the local part is what precedes it, ``postmaster`` when empty (RFC 7208
    §4.3), with anything but printable characters replaced by ``?``. Checking such a path
    against its domain, rather than not at all, keeps it from escaping ``fail = "reject"``.
    """
    text = raw.removeprefix("<").removesuffix(">")
    local, at, domain_text = text.rpartition("@")
    domain = dns_domain(domain_text) if at else None
    if domain is None:
        return None
    local = "".join(c if c.isprintable() else "?" for c in local)
    return SpfIdentity("mailfrom", local or POSTMASTER, domain)


def parse_identity(mail_from: str | None, helo: str | None) -> SmtpIdentity:
    """Both identities from the raw MAIL FROM (without or with angle brackets) and HELO."""
    raw = mail_from or ""
    try:
        sender = parse_reverse_path(raw)
    except AddressSyntaxError as e:
        return SmtpIdentity(
            None,
            helo_domain(helo),
            null_sender=False,
            sender_error=str(e),
            unparsed_sender=lenient_spf_sender(raw),
        )
    return SmtpIdentity(sender, helo_domain(helo), null_sender=sender is None)


def smtp_identity(ctx: Context) -> SmtpIdentity:
    """The identities of ``ctx`` (MAIL FROM is absent before the MAIL stage: null sender)."""
    mail_from = ctx.envelope.mail_from if ctx.envelope is not None else ""
    return parse_identity(mail_from, ctx.helo)
