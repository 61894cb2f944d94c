"""Outbound DKIM signing for authenticated clients and trusted networks.

The key table maps a signing domain to one or more keys; two keys of one domain (RSA and
Ed25519) give dual signing (RFC 8463 3). The author domain (RFC5322.From) picks the keys: its
own, else with ``sign_subdomains`` those of its nearest parent in the table (a signature
with ``d=example.com`` aligns with ``From: news.example.com`` under relaxed DMARC).
Signatures use relaxed/relaxed canonicalization and sign From once more than it occurs, so
that a From added later breaks the signature. Key files are checked at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import dkim

from milterfilters.auth.dkim_body import canonical_pieces
from milterfilters.auth.dkim_keys import KeyFileError, PrivateKey, load_signing_key
from milterfilters.auth.dkim_verify import DKIMPY_LOG
from milterfilters.auth.dmarc_policy import authors
from milterfilters.core.context import Context, Message
from milterfilters.core.filter import Filter
from milterfilters.core.schema import ConfigError, doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, HeaderAdd, HeaderPosition, Verdict
from milterfilters.mail.networks import NetworkSet, trusted_networks
from milterfilters.mail.outbound import is_outbound

DEFAULT_HEADERS = (
    "from", "reply-to", "sender", "subject", "date", "message-id", "to", "cc",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "list-id", "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip


@dataclass(frozen=True)
class KeyEntry:
    """One row of the key table."""

    domain: str = doc("signing domain (d=)")
    selector: str = doc("selector (s=): the key is published at SELECTOR._domainkey.DOMAIN")
    key_file: str = doc(
        "private key file (PEM, or dkimpy's base64 Ed25519 seed), not world-readable; "
        "a relative path is taken from the configuration file's folder"
    )
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = doc("signing algorithm", "rsa-sha256")


@dataclass(frozen=True)
class DkimSignOptions:
    keys: tuple[KeyEntry, ...] = doc(
        "the key table; several entries for one domain (RSA and Ed25519) sign twice",
        default_factory=tuple,
    )
    trusted_networks: tuple[str, ...] = doc(
        "client networks whose mail is signed besides authenticated clients; "
        "empty means [relay] trusted_networks",
        default_factory=tuple,
    )
    headers: tuple[str, ...] = doc("header fields signed when present", DEFAULT_HEADERS)
    oversign: tuple[str, ...] = doc(
        "header fields signed once more than they occur, so none can be added", ("from",)
    )
    sign_subdomains: bool = doc("sign mail from a subdomain with its parent domain's keys", True)

    def validate(self) -> None:
        names = {h.lower() for h in self.headers}
        if "from" not in names:
            raise ValueError("headers must include from (RFC 6376 5.4)")
        forbidden = sorted(names & {h.decode() for h in dkim.DKIM.SHOULD_NOT})
        if forbidden:
            raise ValueError(f"headers must not include {', '.join(forbidden)} (RFC 6376 5.4)")
        NetworkSet(self.trusted_networks)


@dataclass(frozen=True)
class LoadedKey:
    domain: str
    selector: str
    algorithm: str
    key: PrivateKey


class DkimSignFilter(Filter):
    """Adds DKIM-Signature fields to outbound mail (RSA and/or Ed25519, relaxed/relaxed)."""

    name = "dkim_sign"
    enabled_by_default = False  # nothing to do without a key table
    Options = DkimSignOptions
    options: DkimSignOptions
    symbols: ClassVar[dict[str, float]] = {"DKIM_SIGNED": 0.0, "DKIM_SIGN_SKIPPED": 0.0}
    needs_body = True

    def __init__(self, options: DkimSignOptions, services: Services) -> None:
        super().__init__(options, services)
        self.networks = trusted_networks(services, options.trusted_networks)
        self.keys: dict[str, list[LoadedKey]] = {}
        source = Path(services.config_source)
        base = source.parent if source.is_file() else Path.cwd()
        for i, entry in enumerate(options.keys):
            try:
                key = load_signing_key(base / entry.key_file, entry.algorithm)
            except KeyFileError as e:
                raise ConfigError(
                    str(e), source=services.config_source, key=f"{self.name}.keys[{i}]"
                ) from None
            domain = entry.domain.lower().rstrip(".")
            self.keys.setdefault(domain, []).append(LoadedKey(domain, entry.selector, entry.algorithm, key))
        self.headers = tuple(h.lower() for h in options.headers)
        self.oversign = frozenset(h.lower() for h in options.oversign)

    def keys_for(self, author_domain: str) -> list[LoadedKey]:
        """The keys that sign mail from ``author_domain``."""
        labels = author_domain.split(".")
        candidates = (
            [".".join(labels[i:]) for i in range(len(labels) - 1)]
            if self.options.sign_subdomains
            else [author_domain]
        )
        for domain in candidates:
            if domain in self.keys:
                return self.keys[domain]
        return []

    def include_headers(self, message: Message) -> list[str]:
        """h=: each listed field as often as it occurs, oversigned ones once more."""
        present = [h.name.lower() for h in message.headers]
        out = []
        for name in self.headers:
            out += [name] * (present.count(name) + (1 if name in self.oversign else 0))
        return out

    def eom(self, ctx: Context) -> Verdict | None:
        assert ctx.message is not None
        if not self.keys or not is_outbound(ctx, self.networks):
            return None
        found = authors(ctx.message)
        if found.field_count != 1 or len(found.domains) != 1:
            return Verdict.found(Finding("DKIM_SIGN_SKIPPED", "not exactly one From address"))
        keys = self.keys_for(found.domains[0])
        if not keys:
            return None
        if ctx.message.body_truncated:
            return Verdict.found(Finding("DKIM_SIGN_SKIPPED", "message larger than [milter] max_body_bytes"))
        # dkimpy canonicalizes the body with regular expressions that take quadratic time on a
        # long run of blanks; relaxed canonicalization is idempotent, so handing it the body we
        # canonicalized in linear time gives the same bh= and signature at a linear cost
        body = b"".join(canonical_pieces(ctx.message.body, "relaxed"))
        raw = ctx.message.raw_head() + body
        include = [h.encode() for h in self.include_headers(ctx.message)]
        headers = []
        findings = []
        for k in keys:
            signature = dkim.sign(
                raw,
                k.selector.encode(),
                k.domain.encode(),
                k.key.dkimpy_key,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=k.algorithm.encode(),
                include_headers=include,
                logger=DKIMPY_LOG,
            )
            value = signature.decode("ascii").split(":", 1)[1].strip().replace("\r\n", "\n")
            headers.append(HeaderAdd("DKIM-Signature", value, HeaderPosition.TOP))
            findings.append(Finding("DKIM_SIGNED", f"d={k.domain} s={k.selector} a={k.algorithm}"))
        return Verdict(findings=tuple(findings), headers=tuple(headers))
