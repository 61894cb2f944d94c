"""Authenticated allow-lists: sender domains that count only when the domain is authenticated.

A plain sender allow-list is an open door: anyone can write ``From: ceo@partner.example``.
Here a listed domain takes effect only when the message's author domain (RFC5322.From) is
authenticated for this message: an SPF pass for an aligned MAIL FROM domain, or a valid DKIM
signature aligned with it (relaxed alignment, as DMARC has it) that covers the whole body (a
signature with ``l=`` leaves room for appended text, and earns no credit). A listed domain that appears
unauthenticated is reported as well, since that is what a forgery looks like.
Client networks are listed apart: the TCP connection itself authenticates the client IP.

The adjustment is the symbols' weight (``[scores] ALLOWLIST_DOMAIN = -20``, say).
Runs after the dkim filter (it declares ``after = ("dkim",)``) so that it sees its results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from milterfilters.auth.dkim_filter import length_limited_passes
from milterfilters.auth.dmarc_policy import authenticated_domains, authors, is_aligned
from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, Verdict
from milterfilters.mail.networks import NetworkSet


def _normalize(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


@dataclass(frozen=True)
class AllowlistOptions:
    domains: tuple[str, ...] = doc(
        "author domains (and their subdomains) allow-listed when authenticated by aligned SPF or DKIM",
        default_factory=tuple,
    )
    networks: tuple[str, ...] = doc("client networks allow-listed, e.g. 192.0.2.0/24", default_factory=tuple)

    def validate(self) -> None:
        NetworkSet(self.networks)
        if any(not _normalize(d) or "@" in d for d in self.domains):
            raise ValueError("domains must be domain names, like partner.example")


class AllowlistFilter(Filter):
    """Lowers the score of mail from listed domains (when authenticated) and listed networks."""

    name = "allowlist"
    enabled_by_default = False  # nothing to do without a list
    Options = AllowlistOptions
    options: AllowlistOptions
    symbols: ClassVar[dict[str, float]] = {
        "ALLOWLIST_DOMAIN": -10.0,
        "ALLOWLIST_NETWORK": -10.0,
        "ALLOWLIST_UNAUTHENTICATED": 1.0,
    }
    needs_headers = True
    #: reads the DKIM results found at end of data (and SPF's, from MAIL FROM)
    after = ("dkim",)

    def __init__(self, options: AllowlistOptions, services: Services) -> None:
        super().__init__(options, services)
        self.domains = frozenset(_normalize(d) for d in options.domains)
        self.networks = NetworkSet(options.networks)

    def listed_domain(self, domain: str) -> str | None:
        """The list entry ``domain`` falls under (itself or a parent), if any."""
        labels = domain.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            if candidate in self.domains:
                return candidate
        return None

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        findings = []
        ip = ctx.connection.ip
        if ip in self.networks:
            findings.append(Finding("ALLOWLIST_NETWORK", f"client {ip} is allow-listed"))
        found = authors(ctx.message)
        if self.domains and found.field_count == 1 and len(found.domains) == 1 and not found.unusable:
            author = found.domains[0]
            entry = self.listed_domain(author)
            if entry is not None:
                ids = authenticated_domains(ctx)
                via = [f"spf:{d}" for d in ids.spf if is_aligned(d, author, strict=False)]
                # only signatures that cover the whole body: under l= anything can be appended
                whole_body = Counter(ids.dkim) - length_limited_passes(ctx.findings)
                via += [f"dkim:{d}" for d in whole_body if is_aligned(d, author, strict=False)]
                if via:
                    findings.append(
                        Finding("ALLOWLIST_DOMAIN", f"{author} ({entry}) authenticated by {via[0]}")
                    )
                else:
                    findings.append(
                        Finding("ALLOWLIST_UNAUTHENTICATED", f"{author} ({entry}) is not authenticated")
                    )
        return Verdict.found(*findings) if findings else None
