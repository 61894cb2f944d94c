"""Relay authorization: never relay for strangers, and keep our own users to their addresses.

The policy, per recipient at RCPT (Postfix's ``smtpd_relay_restrictions`` done in the milter):

* Trusted clients (``trusted_networks``) and SASL-authenticated clients may send anywhere.
* Anyone may send to ``local_domains`` (we are the final destination) and ``relay_domains``
  (we relay for them, e.g. as backup MX).
* Anyone else gets ``554 5.7.1 <addr>: Relay access denied`` for that recipient only; the
  other recipients of the transaction are judged on their own. 554 rather than 550 because
  it is what Postfix says (``relay_domains_reject_code``), so clients and log parsers see one
  answer whichever of the two refuses.
* Sender-specified routing from untrusted clients is refused the same way, as Postfix's
  ``allow_untrusted_routing = no`` does: ``%``, ``!`` or ``@`` in the local part (quoted or
  not), source routes (``@a,@b:user@c``) and address literals that are not ours.
* A syntactically invalid address gets ``501 5.1.3`` (recipient) or ``501 5.1.7`` (sender),
  the RFC 3463 codes Postfix also uses.

With neither ``local_domains`` nor ``relay_domains`` configured the filter cannot know
which domains are ours: it then leaves the destination decision to the MTA (Postfix's own
``smtpd_relay_restrictions``), still refusing sender-specified routing and bad syntax, and
logs a warning at start-up (once per process and the processes it starts). That keeps the
embedded default safe to enable: it delivers to whatever the MTA accepts and never widens
what the MTA would relay.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal, TypeVar

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.logins import login_key
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, SmtpReply, Verdict
from milterfilters.mail.addresses import (
    Address,
    AddressSyntaxError,
    normalize_domain,
    parse_forward_path,
    parse_reverse_path,
)
from milterfilters.mail.networks import NetworkSet, parse_network

log = logging.getLogger("milterfilters.relay")

#: set in the environment once the "no local_domains" warning is logged, so that the
#: process and the processes it starts (``run``'s worker) log it once between them
WARNED_ENV = "MILTERFILTERS_RELAY_WARNED"


def _warn_unknown_destinations_once() -> None:
    """Warn that the MTA decides which destinations are ours: once per process tree, not at
    every chain built (``check``, library calls, ``run``'s supervisor and worker, reloads)."""
    if os.environ.get(WARNED_ENV):
        return
    os.environ[WARNED_ENV] = "1"
    log.warning(
        "relay: neither local_domains nor relay_domains is set; the MTA's own relay "
        "restrictions decide which destinations are ours"
    )


class DomainSet:
    """Domains as Postfix matches them with ``parent_domain_matches_subdomains`` off.

    ``example.org`` matches that domain only; ``.example.org`` matches its subdomains
    (and not example.org itself). Entries and candidates are compared normalized: lower
    case, A-labels, no trailing dot.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        exact: set[str] = set()
        parents: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            try:
                if entry.startswith("."):
                    parents.add(normalize_domain(entry[1:]))
                else:
                    exact.add(normalize_domain(entry))
            except AddressSyntaxError as e:
                raise ValueError(f"invalid domain {entry!r}: {e}") from None
        self.exact = frozenset(exact)
        self.parents = frozenset(parents)

    def __bool__(self) -> bool:
        return bool(self.exact or self.parents)

    def __contains__(self, domain: object) -> bool:
        """Whether a *normalized* domain matches."""
        if not isinstance(domain, str) or not domain:
            return False
        if domain in self.exact:
            return True
        labels = domain.split(".")
        return any(".".join(labels[i:]) in self.parents for i in range(1, len(labels)))


@dataclass(frozen=True)
class SenderLoginMap:
    """Which envelope senders each SASL login may use (``smtpd_sender_login_maps``).

    Entries are full addresses (``alice@example.org``) or whole domains (``@example.org``).
    Logins (:func:`~milterfilters.core.logins.login_key`, case-folded) and local parts
    compare case-insensitively, as Postfix's table lookups do.
    """

    addresses: Mapping[str, frozenset[str]]
    domains: Mapping[str, frozenset[str]]

    @classmethod
    def build(cls, table: Mapping[str, Iterable[str]]) -> SenderLoginMap:
        addresses: dict[str, set[str]] = {}
        domains: dict[str, set[str]] = {}
        for login, entries in table.items():
            key = login_key(login)
            for entry in entries:
                try:
                    if entry.startswith("@"):
                        domains.setdefault(key, set()).add(normalize_domain(entry[1:]))
                    else:
                        address = parse_forward_path(entry)
                        if not address.domain or address.source_route:
                            raise AddressSyntaxError("expected user@domain or @domain")
                        addresses.setdefault(key, set()).add(_mailbox_key(address))
                except AddressSyntaxError as e:
                    raise ValueError(f"sender_login_maps.{login}: invalid entry {entry!r}: {e}") from None
        return cls(
            addresses=MappingProxyType({k: frozenset(v) for k, v in addresses.items()}),
            domains=MappingProxyType({k: frozenset(v) for k, v in domains.items()}),
        )

    def allows(self, login: str, sender: Address) -> bool:
        key = login_key(login)
        return _mailbox_key(sender) in self.addresses.get(key, ()) or sender.domain in self.domains.get(
            key, ()
        )


def _mailbox_key(address: Address) -> str:
    return f"{address.local_part.lower()}@{address.domain}"


def _shown(address: str) -> str:
    """An address as it may appear in an SMTP reply: printable ASCII, bounded length."""
    text = address.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-97:]}"  # keep the domain in view


@dataclass(frozen=True)
class RelayOptions:
    trusted_networks: tuple[str, ...] = doc(
        "clients (IPv4/IPv6 CIDR) that may relay anywhere, like Postfix's mynetworks; "
        "the default is this host only (mail submitted with the sendmail command appears as 127.0.0.1)",
        ("127.0.0.0/8", "::1/128"),
    )
    local_domains: tuple[str, ...] = doc(
        "domains we are the final destination for; '.example.org' matches its subdomains. "
        "With neither this nor relay_domains set, the MTA decides which destinations are ours",
        (),
    )
    relay_domains: tuple[str, ...] = doc(
        "domains anyone may send to because we relay for them (e.g. as backup MX); '.example.org' "
        "matches its subdomains",
        (),
    )
    local_address_literals: tuple[str, ...] = doc(
        "our own IP addresses: mail to user@[one of these] counts as local; any other address literal "
        "from an untrusted client is refused as sender-specified routing",
        (),
    )
    sender_login_maps: dict[str, tuple[str, ...]] = doc(
        "login -> envelope senders it may use (user@domain or @domain for the whole domain); when set, "
        "an authenticated client using any other sender gets 553 5.7.1 (empty: off)",
        default_factory=dict,
    )
    unauthenticated_local_sender: Literal["off", "score", "reject"] = doc(
        "an untrusted, unauthenticated client using one of local_domains in MAIL FROM: ignore it, "
        "report RELAY_LOCAL_SENDER_UNAUTHENTICATED for the score, or reject it with 553 5.7.1",
        "score",
    )

    def validate(self) -> None:
        for entry in self.trusted_networks + self.local_address_literals:
            try:
                parse_network(entry)
            except ValueError as e:
                raise ValueError(f"invalid network {entry!r}: {e}") from None
        DomainSet(self.local_domains)
        DomainSet(self.relay_domains)
        SenderLoginMap.build(self.sender_login_maps)


T = TypeVar("T")

#: the reply to an address that does not parse (RFC 3463: 5.1.7 sender, 5.1.3 recipient)
_SYNTAX_REPLIES = {"sender": "5.1.7", "recipient": "5.1.3"}


def _parsed(parse: Callable[[str], T], role: str, raw: str) -> T | Verdict:
    """``parse(raw)``, or the 501 for a sender or recipient that does not parse."""
    try:
        return parse(raw)
    except AddressSyntaxError as e:
        return Verdict.reject(
            SmtpReply(501, _SYNTAX_REPLIES[role], f"<{_shown(raw)}>: Bad {role} address syntax"),
            Finding("RELAY_INVALID_ADDRESS", f"{role}: {e}"),
        )


class RelayFilter(Filter):
    """Relay authorization: trusted and authenticated clients send anywhere, others only to our domains."""

    name = "relay"
    Options = RelayOptions
    symbols: ClassVar[dict[str, float]] = {
        # hard policy: these come with a direct reject, their weight only shows in logs
        "RELAY_DENIED": 0.0,
        "RELAY_UNTRUSTED_ROUTING": 0.0,
        "RELAY_INVALID_ADDRESS": 0.0,
        "RELAY_SENDER_LOGIN_MISMATCH": 0.0,
        "RELAY_LOCAL_SENDER_UNAUTHENTICATED": 3.0,
    }
    options: RelayOptions

    def __init__(self, options: RelayOptions, services: Services) -> None:
        super().__init__(options, services)
        self.trusted = NetworkSet(options.trusted_networks)
        self.local_domains = DomainSet(options.local_domains)
        self.relay_domains = DomainSet(options.relay_domains)
        self.local_literals = frozenset(
            parse_network(a).network_address for a in options.local_address_literals
        )
        self.sender_logins = SenderLoginMap.build(options.sender_login_maps)
        self.knows_destinations = bool(self.local_domains or self.relay_domains)
        if not self.knows_destinations:
            _warn_unknown_destinations_once()

    # -- who is talking ------------------------------------------------------------------

    def is_trusted_client(self, ctx: Context) -> bool:
        """Whether the client may relay anywhere: trusted network or SASL-authenticated."""
        return ctx.is_authenticated or ctx.connection.ip in self.trusted

    # -- where to ------------------------------------------------------------------------

    def is_our_literal(self, address: Address) -> bool:
        ip = address.literal_ip
        if ip is not None and isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip is not None and ip in self.local_literals

    def accepts_destination(self, address: Address) -> bool:
        """Whether anyone may send to ``address`` (a domain of ours)."""
        if address.is_postmaster:
            return True
        if address.is_literal:
            return self.is_our_literal(address)
        if not self.knows_destinations:
            return True  # the MTA decides
        return address.domain in self.local_domains or address.domain in self.relay_domains

    @staticmethod
    def sender_routing(address: Address) -> str:
        """Why ``address`` asks for sender-specified routing, or ``""``."""
        if address.source_route:
            return "source route"
        if address.has_routing_characters:
            return "routing character in local part"
        return ""

    # -- stages --------------------------------------------------------------------------

    def mail(self, ctx: Context) -> Verdict | None:
        assert ctx.envelope is not None
        raw = ctx.envelope.mail_from
        sender = _parsed(parse_reverse_path, "sender", raw)
        if isinstance(sender, Verdict):
            return sender
        if sender is None:
            return None  # the null sender: bounces are judged by their recipients
        if ctx.auth is not None and ctx.auth.login and self.options.sender_login_maps:
            if not self.sender_logins.allows(ctx.auth.login, sender):
                text = f"<{_shown(raw)}>: Sender address rejected: not owned by user {_shown(ctx.auth.login)}"
                return Verdict.reject(
                    SmtpReply(553, "5.7.1", text),
                    Finding("RELAY_SENDER_LOGIN_MISMATCH", f"{ctx.auth.login} used {sender.mailbox}"),
                )
        mode = self.options.unauthenticated_local_sender
        if mode != "off" and not self.is_trusted_client(ctx) and sender.domain in self.local_domains:
            finding = Finding(
                "RELAY_LOCAL_SENDER_UNAUTHENTICATED",
                f"{sender.mailbox} from unauthenticated client {ctx.connection.client_address}",
            )
            if mode == "reject":
                return Verdict.reject(
                    SmtpReply(553, "5.7.1", f"<{_shown(raw)}>: Sender address rejected: not logged in"),
                    finding,
                )
            return Verdict.found(finding)
        return None

    def rcpt(self, ctx: Context) -> Verdict | None:
        assert ctx.recipient is not None
        raw = ctx.recipient.address
        recipient = _parsed(parse_forward_path, "recipient", raw)
        if isinstance(recipient, Verdict):
            return recipient
        if self.is_trusted_client(ctx):
            return None
        denied = SmtpReply(554, "5.7.1", f"<{_shown(raw)}>: Relay access denied")
        routing = self.sender_routing(recipient)
        if routing:
            return Verdict.reject(
                denied, Finding("RELAY_UNTRUSTED_ROUTING", f"{routing}: {_shown(str(recipient))}")
            )
        if not self.accepts_destination(recipient):
            symbol = "RELAY_UNTRUSTED_ROUTING" if recipient.is_literal else "RELAY_DENIED"
            return Verdict.reject(
                denied,
                Finding(symbol, f"{_shown(recipient.domain)} from {ctx.connection.client_address}"),
            )
        return None
