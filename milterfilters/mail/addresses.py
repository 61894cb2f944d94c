"""SMTP envelope addresses: an RFC 5321 path parser (with RFC 6531 UTF-8) and its formatter.

The grammar, from RFC 5321 section 4.1.2, with RFC 6531's UTF-8 extensions::

    Path          = "<" [ A-d-l ":" ] Mailbox ">"
    A-d-l         = At-domain *( "," At-domain )        ; a source route, obsolete
    Mailbox       = Local-part "@" ( Domain / address-literal )
    Local-part    = Dot-string / Quoted-string
    Quoted-string = DQUOTE *( qtextSMTP / "\\" %d32-126 ) DQUOTE

Parsing yields an :class:`Address` with the local part unquoted and unescaped, the domain
normalized for comparison (lower case, IDNs as A-labels, one trailing dot removed; a U-label
must be valid IDNA2008 as written, see :func:`normalize_domain`) and an
address literal normalized (``[IPv6:2001:db8::1]``). :func:`format_address` writes the
canonical form back, so ``parse(format(parse(s))) == parse(s)``.

Every malformed input raises :class:`AddressSyntaxError` and nothing else. Lengths are
checked only where DNS imposes them (63-octet labels, 255-octet domains) and against a
line-length cap: RFC 5321 asks servers not to enforce the 64-octet local-part limit, and
long VERP/SRS local parts are common in legitimate mail.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna

__all__ = [
    "Address",
    "AddressSyntaxError",
    "format_address",
    "format_path",
    "normalize_domain",
    "parse_forward_path",
    "parse_reverse_path",
]

#: the longest path accepted: a whole SMTP command line is 512 octets (RFC 5321 4.5.3.1.4),
#: extensions make it longer in practice; nothing legitimate comes near this.
MAX_PATH_OCTETS = 1000
MAX_DOMAIN_OCTETS = 255

#: characters through which a sender asks for mail to be routed on from the local part
ROUTING_CHARACTERS = frozenset("%!@")

_ATEXT_ASCII = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
# RFC 6531 adds UTF8-non-ascii to atext and qtext; C1 controls are left out here. Strings
# from the MTA carry undecodable bytes as lone surrogates (surrogateescape): not UTF-8, so
# not allowed either.
_NON_ASCII = "\u00a0-\ud7ff\ue000-\U0010ffff"
_ATOM = re.compile(f"[{_ATEXT_ASCII}{_NON_ASCII}]+")
_DOT_STRING = re.compile(f"{_ATOM.pattern}(?:\\.{_ATOM.pattern})*")
_QTEXT = re.compile(f"[ !#-\\[\\]-~{_NON_ASCII}]")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_TAG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_DCONTENT = re.compile(r"[!-Z^-~]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class AddressSyntaxError(ValueError):
    """An envelope address that does not follow RFC 5321 (and RFC 6531)."""


@dataclass(frozen=True)
class Address:
    """A parsed envelope mailbox.

    ``local_part`` is the semantic value (quotes and backslash escapes removed, case kept:
    local parts are case-sensitive). ``domain`` is normalized for comparison: lower-case
    A-labels without a trailing dot, or a normalized address literal such as
    ``[192.0.2.1]``; it is ``""`` only for the bare ``Postmaster`` recipient.
    ``source_route`` holds the normalized domains of an obsolete ``@a,@b:`` prefix.
    """

    local_part: str
    domain: str
    source_route: tuple[str, ...] = ()

    @property
    def is_literal(self) -> bool:
        """Whether the domain is an address literal (``[192.0.2.1]``, ``[IPv6:...]``)."""
        return self.domain.startswith("[")

    @property
    def literal_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address of an IPv4 or IPv6 address literal; None otherwise."""
        if not self.is_literal:
            return None
        body = self.domain[1:-1]
        if body[:5].lower() == "ipv6:":
            return ipaddress.IPv6Address(body[5:])
        try:
            return ipaddress.IPv4Address(body)
        except ValueError:
            return None  # a general address literal ([tag:content])

    @property
    def has_routing_characters(self) -> bool:
        """Whether the local part holds ``%``, ``!`` or ``@`` (user%host@relay routing)."""
        return not ROUTING_CHARACTERS.isdisjoint(self.local_part)

    @property
    def is_postmaster(self) -> bool:
        """The bare ``<Postmaster>`` recipient RFC 5321 requires servers to accept."""
        return not self.domain and self.local_part.lower() == "postmaster"

    @property
    def mailbox(self) -> str:
        """The canonical ``local@domain`` (no source route, no angle brackets)."""
        return format_address(self, with_route=False)

    def __str__(self) -> str:
        return format_address(self)


def _ascii_label(label: str) -> str:
    """An LDH label (lower case already); an A-label must decode to a valid U-label."""
    if not _LDH_LABEL.fullmatch(label) or len(label) > 63:
        raise AddressSyntaxError(f"invalid domain label {label!r}")
    if label.startswith("xn--"):
        try:
            if idna.alabel(idna.ulabel(label)).decode("ascii") != label:
                raise idna.IDNAError("not the canonical A-label of its U-label")
        except (idna.IDNAError, UnicodeError, ValueError) as e:
            raise AddressSyntaxError(f"invalid A-label {label!r}: {e}") from None
    return label


def _u_label(label: str) -> str:
    """The A-label of a U-label that is valid IDNA2008 as written (RFC 5891 5.4), no mapping."""
    try:
        return _ascii_label(idna.alabel(label.translate(_ASCII_LOWER)).decode("ascii"))
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        raise AddressSyntaxError(f"invalid internationalized domain label {label!r}: {e}") from None


def normalize_domain(domain: str) -> str:
    """A domain name for comparison: lower case, A-labels, one trailing dot removed.

    Labels are separated by ``.`` (U+002E) only. An ASCII label is an LDH label, compared
    case-insensitively; an A-label (``xn--``) must be the canonical form of a valid U-label.
    A non-ASCII label must be a U-label that is valid IDNA2008 *as written* (RFC 5890,
    RFC 5891 section 5.4): in NFC, lower case, every code point PVALID or a valid CONTEXTJ/O.
    No UTS #46 mapping is applied: that mapping is for user interfaces, and on the wire it
    would turn ``\\uff54\\uff45\\uff53\\uff54.example`` (full-width letters), ``test\\u3002example``
    (ideographic full stop) or ``\\u212aey.example`` (Kelvin sign) into an ASCII domain of ours.
    Only ASCII letters are lower-cased, as DNS compares them (RFC 4343).

    Raises :class:`AddressSyntaxError` for anything that is not an RFC 5321 domain.
    """
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise AddressSyntaxError("empty domain")
    domain = ".".join(
        _ascii_label(label.translate(_ASCII_LOWER)) if label.isascii() else _u_label(label)
        for label in domain.split(".")
    )
    if len(domain) > MAX_DOMAIN_OCTETS:
        raise AddressSyntaxError("domain longer than 255 octets")
    return domain


def _normalize_literal(text: str) -> str:
    """``[...]`` → the normalized literal, e.g. ``[IPv6:2001:db8::1]``."""
    body = text[1:-1]
    tag, colon, content = body.partition(":")
    if not colon:
        try:
            return f"[{ipaddress.IPv4Address(body)}]"
        except ValueError:
            raise AddressSyntaxError(f"invalid IPv4 address literal {text!r}") from None
    if not _TAG.fullmatch(tag) or not _DCONTENT.fullmatch(content):
        raise AddressSyntaxError(f"invalid address literal {text!r}")
    if tag.lower() == "ipv6":
        try:
            ip = ipaddress.IPv6Address(content)
        except ValueError:
            raise AddressSyntaxError(f"invalid IPv6 address literal {text!r}") from None
        if ip.scope_id is not None:
            raise AddressSyntaxError(f"scoped IPv6 address literal {text!r}")
        return f"[IPv6:{ip.compressed}]"
    return f"[{tag}:{content}]"


class _Scanner:
    """A cursor over the text being parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of address"
            raise AddressSyntaxError(f"expected {char!r} at position {self.pos}, found {found}")
        self.pos += 1

    def take_until(self, stops: str) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in stops:
            self.pos += 1
        return self.text[start : self.pos]

    def domain_or_literal(self) -> str:
        if self.peek() == "[":
            start = self.pos
            end = self.text.find("]", start)
            if end < 0:
                raise AddressSyntaxError("unterminated address literal")
            self.pos = end + 1
            return _normalize_literal(self.text[start : self.pos])
        return normalize_domain(self.take_until(",:>"))

    def source_route(self) -> tuple[str, ...]:
        if self.peek() != "@":
            return ()
        route = []
        while True:
            self.expect("@")
            route.append(self.domain_or_literal())
            if self.peek() != ",":
                break
            self.pos += 1
        self.expect(":")
        return tuple(route)

    def quoted_local_part(self) -> str:
        self.expect('"')
        out: list[str] = []
        while True:
            c = self.peek()
            if not c:
                raise AddressSyntaxError("unterminated quoted local part")
            self.pos += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                escaped = self.peek()
                if not escaped or not " " <= escaped <= "~":
                    raise AddressSyntaxError("backslash must escape a printable ASCII character")
                self.pos += 1
                out.append(escaped)
            elif _QTEXT.fullmatch(c):
                out.append(c)
            else:
                raise AddressSyntaxError(f"character {c!r} not allowed in a quoted local part")

    def local_part(self) -> str:
        if self.peek() == '"':
            return self.quoted_local_part()
        # a dot-string ends at the last "@" before the domain: "@" is not atext
        text = self.take_until("@>")
        if not _DOT_STRING.fullmatch(text):
            raise AddressSyntaxError(f"invalid local part {text!r}")
        return text


def _parse(text: str, *, allow_postmaster: bool) -> Address:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_OCTETS:
        raise AddressSyntaxError(f"address longer than {MAX_PATH_OCTETS} octets")
    bracketed = text.startswith("<")
    scanner = _Scanner(text[1:] if bracketed else text)
    route = scanner.source_route()
    local = scanner.local_part()
    if allow_postmaster and not route and local.lower() == "postmaster" and scanner.peek() != "@":
        domain = ""
    else:
        scanner.expect("@")
        domain = scanner.domain_or_literal()
    if bracketed:
        scanner.expect(">")
    if not scanner.at_end():
        raise AddressSyntaxError(f"unexpected {scanner.text[scanner.pos :]!r} after the address")
    return Address(local_part=local, domain=domain, source_route=route)


def parse_forward_path(text: str) -> Address:
    """Parse a RCPT TO path, with or without angle brackets.

    Accepts a source route and the bare ``Postmaster`` (case-insensitive) that RFC 5321
    requires; raises :class:`AddressSyntaxError` for anything else that is malformed.
    """
    return _parse(text, allow_postmaster=True)


def parse_reverse_path(text: str) -> Address | None:
    """Parse a MAIL FROM path; the null sender (``<>`` or ``""``) gives ``None``."""
    if text in ("", "<>"):
        return None
    return _parse(text, allow_postmaster=False)


def format_local_part(local_part: str) -> str:
    """A local part as a dot-string when it is one, else as a quoted string."""
    if _DOT_STRING.fullmatch(local_part):
        return local_part
    for c in local_part:
        if not (_QTEXT.fullmatch(c) or c in '"\\'):
            raise AddressSyntaxError(f"character {c!r} cannot appear in a local part")
    escaped = local_part.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_address(address: Address, *, with_route: bool = True) -> str:
    """The canonical text of ``address`` without angle brackets."""
    local = format_local_part(address.local_part)
    mailbox = f"{local}@{address.domain}" if address.domain else local
    if with_route and address.source_route:
        return ",".join(f"@{d}" for d in address.source_route) + ":" + mailbox
    return mailbox


def format_path(address: Address | None) -> str:
    """The canonical path in angle brackets; ``None`` (the null sender) gives ``<>``."""
    return "<>" if address is None else f"<{format_address(address)}>"
