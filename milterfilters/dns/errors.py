"""DNS errors as the authentication filters see them.

Filters map :class:`DnsTemporaryError` to a ``temperror`` result (RFC 7208 §2.6.6,
RFC 6376 §6.1.2); a permanent :class:`DnsError` means the question itself was bad.
"""

from __future__ import annotations


class DnsError(Exception):
    """A DNS lookup failed."""


class DnsTemporaryError(DnsError):
    """The answer is unknown for now: timeout, SERVFAIL, network error, or budget spent."""


class DnsTimeout(DnsTemporaryError):
    """No answer within the allowed time."""


class DnsBudgetExhausted(DnsTemporaryError):
    """The per-check lookup budget (count or time) is spent."""
