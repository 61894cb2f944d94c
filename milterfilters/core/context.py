"""The immutable transaction context that filters read.

A new :class:`Context` is made for every stage; filters never mutate it and keep no
per-message state of their own. Earlier stages' findings and authentication results are
visible to later stages (DMARC reads the SPF result, say).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

from milterfilters.core.deadline import NO_DEADLINE, Deadline
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import AuthResult, Finding

_EMPTY: Mapping[str, str] = MappingProxyType({})
_T = TypeVar("_T")


def strip_angle_brackets(address: str) -> str:
    """``<a@b>`` → ``a@b``; ``<>`` and empty → ``""`` (the null sender)."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address


@dataclass(frozen=True)
class TlsInfo:
    """TLS facts the MTA passed as macros ({tls_version}, {cipher}, ...)."""

    version: str = ""
    cipher: str = ""
    cipher_bits: str = ""
    cert_subject: str = ""
    cert_issuer: str = ""


@dataclass(frozen=True)
class Connection:
    """Who is talking to the MTA."""

    client_address: str | None = None
    client_port: int | None = None
    client_name: str = "unknown"
    family: str = "inet"  # inet, inet6, unix, unknown
    tls: TlsInfo | None = None
    mta_hostname: str = ""  # macro j
    daemon_name: str = ""  # macro {daemon_name}

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The client IP; an IPv4-mapped IPv6 address is returned as IPv4."""
        if not self.client_address:
            return None
        try:
            ip = ipaddress.ip_address(self.client_address.strip("[]").removeprefix("IPv6:"))
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ip


@dataclass(frozen=True)
class Auth:
    """The SASL identity ({auth_authen}, {auth_type}, {auth_author})."""

    login: str
    mechanism: str = ""
    author: str = ""


@dataclass(frozen=True)
class Recipient:
    """One envelope recipient with its ESMTP parameters."""

    address: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Envelope:
    """MAIL FROM and the recipients accepted so far."""

    mail_from: str  # without angle brackets; "" is the null sender
    mail_args: tuple[str, ...] = ()
    recipients: tuple[Recipient, ...] = ()

    @property
    def is_null_sender(self) -> bool:
        return self.mail_from == ""


@dataclass(frozen=True)
class HeaderField:
    """One header field as received.

    ``raw_value`` is everything after the colon, leading space and folding included,
    decoded from bytes with ``surrogateescape`` so the original bytes can be recovered.
    """

    name: str
    raw_value: str

    @property
    def value(self) -> str:
        """The value unfolded (RFC 5322 §2.2.3: line breaks removed) and stripped."""
        return self.raw_value.replace("\r\n", "").replace("\n", "").strip()

    def raw_bytes(self) -> bytes:
        text = f"{self.name}:{self.raw_value}"
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        return text.encode("utf-8", "surrogateescape") + b"\r\n"


@dataclass(frozen=True)
class Message:
    """The message at end of data: header fields in order and the (possibly capped) body.

    ``size`` counts every body byte the MTA sent; ``body`` holds at most the configured cap
    and ``body_truncated`` says whether bytes were dropped.
    """

    headers: tuple[HeaderField, ...] = ()
    body: bytes = b""
    size: int = 0
    body_truncated: bool = False
    #: views computed from the message once and shared by the filters that read it (:meth:`view`)
    _views: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def view(self, key: Hashable, make: Callable[[Message], _T]) -> _T:
        """``make(self)``, computed on the first call with ``key`` and remembered with the message.

        The message never changes, so a parsed form of it (the classifier's MIME walk, the raw
        header block) is computed once per message however many filters read it. ``key`` names
        the view and every setting it depends on.
        """
        try:
            return self._views[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._views[key] = make(self)
            return value

    def get(self, name: str) -> str | None:
        """The first field called ``name`` (case-insensitive), unfolded; None if absent."""
        lname = name.lower()
        for h in self.headers:
            if h.name.lower() == lname:
                return h.value
        return None

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [h.value for h in self.headers if h.name.lower() == lname]

    def raw(self) -> bytes:
        """The message as RFC 5322 bytes with CRLF line ends."""
        return self.raw_head() + self.body

    def raw_head(self) -> bytes:
        """The header as RFC 5322 bytes with CRLF line ends, through the empty line (made once)."""
        return self.view("raw_head", lambda m: b"".join(h.raw_bytes() for h in m.headers) + b"\r\n")

    @property
    def header_bytes(self) -> int:
        return sum(len(h.name) + len(h.raw_value) + 3 for h in self.headers)


@dataclass(frozen=True)
class Context:
    """Everything known about the transaction at ``stage``."""

    stage: Stage
    connection: Connection = field(default_factory=Connection)
    helo: str | None = None
    auth: Auth | None = None
    envelope: Envelope | None = None
    recipient: Recipient | None = None  # the recipient being judged, at RCPT
    message: Message | None = None  # at EOM
    queue_id: str = ""
    macros: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    findings: tuple[Finding, ...] = ()  # from earlier stages and earlier filters of this stage
    auth_results: tuple[AuthResult, ...] = ()  # likewise
    #: when the current filter call must stop (its ``timeout``); long loops call ``check()``
    deadline: Deadline = field(default=NO_DEADLINE, compare=False)

    def at(self, stage: Stage, **changes: object) -> Context:
        """A copy of this context for another stage."""
        return replace(self, stage=stage, **changes)  # type: ignore[arg-type]

    def but(self, **changes: object) -> Context:
        """A copy with ``changes`` — what ``dataclasses.replace`` does, at a fraction of its cost
        (the chain makes one per filter call; Context has no ``__post_init__`` to rerun)."""
        new = object.__new__(Context)
        new.__dict__.update(self.__dict__)
        for name, value in changes.items():
            if name not in _CONTEXT_FIELDS:
                raise TypeError(f"Context has no field {name!r}")
            new.__dict__[name] = value
        return new

    @property
    def is_authenticated(self) -> bool:
        return self.auth is not None and bool(self.auth.login)


_CONTEXT_FIELDS = frozenset(f.name for f in fields(Context))
