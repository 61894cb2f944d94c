"""DMARC (RFC 7489): policy discovery, identifier alignment and the policy to apply.

Pure logic over a TXT lookup: no filter machinery here, so the allow-list and tests use it
as well. Organizational domains come from the Public Suffix List that the
``publicsuffixlist`` package ships (no network at run time).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address, AddressHeader, HeaderRegistry
from email.utils import getaddresses

import idna
from publicsuffixlist import PublicSuffixList

from milterfilters.core.context import Context, Message
from milterfilters.dns import DnsTemporaryError, TxtLookup

POLICIES = ("none", "quarantine", "reject")
_DOWNGRADE = {"reject": "quarantine", "quarantine": "none", "none": "none"}
_WSP = " \t"  # RFC 7489 6.4: white space around tags is SP or HTAB, nothing else
_RESULT_SEVERITY = {"pass": 0, "none": 1, "permerror": 2, "temperror": 3, "fail": 4}


class DmarcRecordError(ValueError):
    """A DMARC record (or set of records) that cannot be used."""


@dataclass(frozen=True)
class DmarcRecord:
    """The tags of a DMARC record that matter to a receiver."""

    policy: str  # p=
    subdomain_policy: str | None = None  # sp=
    percent: int = 100  # pct=
    dkim_strict: bool = False  # adkim=s
    spf_strict: bool = False  # aspf=s


def _tags(text: str) -> dict[str, str]:
    """The record's tags by lower-case name; a tag's first occurrence counts, and a part that
    is no ``tag=value`` pair is ignored (RFC 7489 6.3: syntax errors after ``v`` and ``p``
    are ignored outright)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip(_WSP).lower()
        if sep and key:
            out.setdefault(key, value.strip(_WSP))
    return out


_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")


def _has_report_uri(rua: str) -> bool:
    """Whether ``rua`` holds at least one syntactically valid URI (RFC 7489 6.4 ``dmarc-uri``,
    read loosely: a scheme, a colon and something after it)."""
    return any(_URI_SCHEME.match(uri.strip(_WSP)) for uri in rua.split(","))


def _percent(value: str | None) -> int:
    """``pct=`` as 0..100; missing or invalid is the default 100 (RFC 7489 6.3)."""
    if value is not None and value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= 100:
        return int(value)
    return 100


def is_dmarc_record(text: str) -> bool:
    """Whether ``text``'s first tag is exactly ``v=DMARC1`` (RFC 7489 6.6.3 step 3).

    A TXT record at ``_dmarc`` that merely starts with those characters (``v=DMARC1x``,
    ``v=DMARC10``) is not a DMARC record: it is discarded and discovery goes on.
    """
    key, sep, value = text.split(";", 1)[0].partition("=")
    return bool(sep) and key.strip(_WSP).lower() == "v" and value.strip(_WSP) == "DMARC1"


def parse_record(text: str) -> DmarcRecord:
    """Parse a DMARC TXT record; raises :class:`DmarcRecordError` when it is unusable.

    As RFC 7489 6.6.3 says, a record whose ``p`` (or ``sp``) is missing or invalid counts
    as ``p=none`` when its ``rua`` names a valid report URI, and is unusable otherwise.
    Invalid ``pct``, ``adkim`` or ``aspf`` values take their defaults (100, ``r``, ``r``)
    and unknown tags are ignored (RFC 7489 6.3).
    """
    if not is_dmarc_record(text):
        raise DmarcRecordError("record does not start with v=DMARC1")
    values = _tags(text)
    policy = values.get("p", "").lower()
    subdomain_policy = values["sp"].lower() if "sp" in values else None
    if policy not in POLICIES or (subdomain_policy is not None and subdomain_policy not in POLICIES):
        if not _has_report_uri(values.get("rua", "")):
            raise DmarcRecordError(f"invalid policy p={values.get('p', '')!r}")
        policy, subdomain_policy = "none", None
    strict = {tag: values.get(tag, "r").lower() == "s" for tag in ("adkim", "aspf")}
    return DmarcRecord(policy, subdomain_policy, _percent(values.get("pct")), strict["adkim"], strict["aspf"])


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registered domain of ``domain`` (RFC 7489 3.2); a public suffix is its own."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def is_aligned(identifier: str, author_domain: str, *, strict: bool) -> bool:
    """Identifier alignment: equal domains (strict) or equal organizational domains (relaxed).

    Names are compared as A-labels, so a DKIM ``d=`` in U-labels (RFC 8616) aligns with the
    same name in A-labels."""
    a, b = _a_labels(identifier), _a_labels(author_domain)
    if not a or not b:
        return False
    if strict:
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _a_labels(domain: str) -> str:
    """``domain`` in lower case without its final dot, U-labels as A-labels (unchanged when it
    is no valid IDNA2008 name: such a name aligns with nothing but itself)."""
    domain = domain.lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain


@dataclass(frozen=True)
class DiscoveredPolicy:
    """A DMARC record and where it was found."""

    record: DmarcRecord
    domain: str  # the domain whose _dmarc record this is
    from_organizational_domain: bool  # found at the organizational domain, not the author's


def discover_policy(author_domain: str, lookup_txt: TxtLookup) -> DiscoveredPolicy | None:
    """Find the DMARC record for ``author_domain`` (RFC 7489 6.6.3), or None.

    Raises :class:`DmarcRecordError` for an unusable record and
    :class:`~milterfilters.dns.DnsTemporaryError` when DNS cannot answer now.
    """
    author_domain = author_domain.lower().rstrip(".")
    org = organizational_domain(author_domain)
    for domain in dict.fromkeys((author_domain, org)):
        texts = [t.decode("utf-8", "replace") for t in lookup_txt(f"_dmarc.{domain}")]
        records = [t for t in texts if is_dmarc_record(t)]
        if len(records) > 1:
            raise DmarcRecordError(f"several DMARC records at _dmarc.{domain}")
        if records:
            return DiscoveredPolicy(parse_record(records[0]), domain, domain != author_domain)
    return None


@dataclass(frozen=True)
class DmarcResult:
    """What DMARC says about one author domain."""

    result: str  # pass, fail, none, temperror, permerror
    author_domain: str
    policy: str = "none"  # the policy the domain asks for (p, or sp for a subdomain)
    disposition: str = "none"  # what to do after pct sampling
    record_domain: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""

    @property
    def severity(self) -> tuple[int, int]:
        return POLICIES.index(self.disposition), _RESULT_SEVERITY[self.result]


def evaluate(
    author_domain: str,
    identifiers: Identifiers,
    *,
    lookup_txt: TxtLookup,
    sample: Callable[[], float],
) -> DmarcResult:
    """Evaluate DMARC for one author domain with what SPF and DKIM established.

    A message that would fail while an aligned identifier's check could not be completed
    (DNS) is a ``temperror``, not a ``fail``: it might have passed. ``sample()`` returns a
    number in [0, 1) to apply ``pct``.
    """
    if not author_domain:
        return DmarcResult("permerror", "", reason="no domain in the From address")
    try:
        found = discover_policy(author_domain, lookup_txt)
    except DnsTemporaryError as e:
        return DmarcResult("temperror", author_domain, reason=f"DNS: {e}")
    except DmarcRecordError as e:
        return DmarcResult("permerror", author_domain, reason=str(e))
    if found is None:
        return DmarcResult("none", author_domain, reason="no DMARC record")
    record = found.record
    spf_ok = any(is_aligned(d, author_domain, strict=record.spf_strict) for d in identifiers.spf)
    dkim_ok = any(is_aligned(d, author_domain, strict=record.dkim_strict) for d in identifiers.dkim)
    policy = record.policy
    if found.from_organizational_domain and record.subdomain_policy is not None:
        policy = record.subdomain_policy
    common = dict(
        author_domain=author_domain,
        policy=policy,
        record_domain=found.domain,
        spf_aligned=spf_ok,
        dkim_aligned=dkim_ok,
    )
    if spf_ok or dkim_ok:
        return DmarcResult("pass", **common)  # type: ignore[arg-type]
    disposition = policy if sample() * 100 < record.percent else _DOWNGRADE[policy]
    undecided = [d for d in identifiers.undecided if is_aligned(d, author_domain, strict=False)]
    if undecided:
        reason = f"result for aligned {undecided[0]} unknown (DNS)"
        return DmarcResult("temperror", disposition=disposition, reason=reason, **common)  # type: ignore[arg-type]
    reason = "" if disposition == policy else f"pct={record.percent} sampled out"
    return DmarcResult("fail", disposition=disposition, reason=reason, **common)  # type: ignore[arg-type]


def strictest(results: Sequence[DmarcResult]) -> DmarcResult:
    """The result to act on when a message has several author domains (RFC 7489 6.6.1)."""
    return max(results, key=lambda r: r.severity)


@dataclass(frozen=True)
class Authors:
    """The RFC5322.From of a message: how many From fields, and the domains they name."""

    field_count: int
    domains: tuple[str, ...]  # in order, without repeats; "" for an address without a domain
    #: why the author domain cannot be read with certainty ("" when it can)
    unusable: str = ""


def authors(message: Message) -> Authors:
    """The author domains of ``message`` over every From field.

    Each From value is read twice, strictly (RFC 5322, ``email.headerregistry``) and
    leniently (``getaddresses``); when the readings disagree, or a domain is missing or is not
    a valid domain name, the author domain is *unusable*: what a mail client displays may be a
    domain DMARC never saw (RFC 7489 6.6.1).
    """
    values = message.get_all("From")
    domains: dict[str, None] = {}
    problem = ""
    for value in values:
        found, why = read_author_domains(value)
        problem = problem or why
        domains.update(dict.fromkeys(found))
    if values and not domains:
        domains[""] = None
    return Authors(len(values), tuple(domains), problem)


_REGISTRY = HeaderRegistry()
_LDH_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_DOT_LOOKALIKES = ("\u3002", "\uff0e", "\uff61")


@functools.lru_cache(maxsize=4096)
def read_author_domains(value: str) -> tuple[tuple[str, ...], str]:
    """The domains one From value names (lower case, IDNA A-labels), and why they cannot be
    trusted to be what a reader sees ("" when they can).

    A pure function of the value, cached: the RFC 5322 parser costs about 0.3 ms, and senders
    (lists, newsletters, colleagues) repeat."""
    try:
        header = _REGISTRY("From", value)
        strict: list[Address] = list(header.addresses) if isinstance(header, AddressHeader) else []
    except Exception:  # the header parser raises assorted errors on hostile input
        return (), "From cannot be parsed"
    if not strict:
        return (), "From names no address"
    domains = []
    for address in strict:
        if not address.domain:
            return (), "an address in From has no domain"
        domain = _valid_domain(address.domain)
        if not domain:
            return (), "a From domain is not a valid domain name"
        domains.append(domain)
    lenient = {a.rpartition("@")[2].lower() for _, a in getaddresses([value]) if a}
    if lenient != {d.lower() for d in (a.domain for a in strict)}:
        return (), "From reads differently to different parsers"
    return tuple(dict.fromkeys(domains)), ""


def _valid_domain(domain: str) -> str:
    """``domain`` as a lower-case A-label name, or "" when it is no valid domain name
    (a literal, a trailing or look-alike dot, an invalid IDNA2008 label)."""
    if domain.startswith("[") or any(d in domain for d in _DOT_LOOKALIKES):
        return ""
    labels = domain.lower().split(".")
    if len(domain) > 253 or not all(labels):
        return ""
    if domain.isascii():
        return domain.lower() if all(_LDH_LABEL.fullmatch(label) for label in labels) else ""
    try:
        return idna.encode(domain, uts46=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return ""


@dataclass(frozen=True)
class Identifiers:
    """The domains SPF and DKIM authenticated for a message, and those whose check failed
    temporarily (their result is unknown)."""

    spf: tuple[str, ...] = ()
    dkim: tuple[str, ...] = ()
    undecided: tuple[str, ...] = ()


def authenticated_domains(ctx: Context) -> Identifiers:
    """What our own SPF and DKIM results (in ``ctx.auth_results``) establish.

    SPF counts for its MAIL FROM domain, and for the HELO name only when the MAIL FROM is
    null (RFC 7489 3.1.2). DKIM counts for each passing signature's ``d=``.
    """
    null_sender = ctx.envelope is not None and ctx.envelope.is_null_sender
    found: dict[str, list[str]] = {"spf": [], "dkim": [], "undecided": []}
    for r in ctx.auth_results:
        props = dict(r.properties)
        domain = ""
        if r.method == "spf":
            if props.get("smtp.mailfrom"):
                domain = props["smtp.mailfrom"].rpartition("@")[2]
            elif null_sender and props.get("smtp.helo"):
                domain = props["smtp.helo"]
        elif r.method == "dkim":
            domain = props.get("header.d", "")
        if not domain:
            continue
        if r.result == "pass":
            found[r.method].append(domain.lower())
        elif r.result == "temperror":
            found["undecided"].append(domain.lower())
    return Identifiers(*(tuple(found[k]) for k in ("spf", "dkim", "undecided")))
