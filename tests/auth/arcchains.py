"""Building ARC chains for the tests: messages sealed hop by hop with dkimpy, and a TXT
lookup over a dictionary (the keys the sealers publish)."""

from __future__ import annotations

from dataclasses import dataclass

import dkim

from milterfilters.auth.dkim_keys import PrivateKey
from milterfilters.dns import DnsTemporaryError

ORIGINAL = (
    b"From: Alice <alice@example.com>\r\nTo: team@lists.example.org\r\nSubject: minutes\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <3@example.com>\r\n\r\nMinutes attached.\r\n"
)


@dataclass(frozen=True)
class Sealer:
    """A forwarder that seals: its domain, selector ``arc`` and key."""

    domain: str
    key: PrivateKey

    @property
    def record_name(self) -> str:
        return f"arc._domainkey.{self.domain}"


def seal(message: bytes, sealer: Sealer, cv: str = "", results: str = "") -> bytes:
    """``message`` as ``sealer`` forwards it: its Authentication-Results (``arc=cv`` and
    ``results``) recorded in a new ARC set on top. ``cv`` is "" for the first hop."""
    entries = [e for e in (f"arc={cv}" if cv else "", results) if e]
    stamp = f"Authentication-Results: {sealer.domain}; {'; '.join(entries) or 'none'}\r\n".encode()
    stamped = stamp + message
    headers = dkim.arc_sign(
        stamped, b"arc", sealer.domain.encode(), sealer.key.dkimpy_key, sealer.domain.encode()
    )
    assert len(headers) == 3, "dkimpy refused to seal"
    return b"".join(headers) + message  # the stamp is the sealer's, not delivered onwards


def lookup_for(*sealers: Sealer, failing: str = "") -> object:
    """A TXT lookup serving the sealers' keys; ``failing`` names a record whose lookup fails."""
    records = {s.record_name: [s.key.public_record.encode()] for s in sealers}

    def lookup(name: str) -> list[bytes]:
        if name == failing:
            raise DnsTemporaryError(f"{name}: SERVFAIL")
        return records.get(name, [])

    return lookup
