"""SASL logins: validated before they are trusted, and one comparison key for all who count them.

The MTA passes the login of an authenticated client as ``{auth_authen}`` (the milter) or the
operator types it (``milterfilters check --auth-user``); both reach the chain through
:meth:`Session.mail <milterfilters.core.chain.Session.mail>`, which keeps a login only if
:func:`valid_login` says so. Whatever fails is treated as no login at all: the client is
unauthenticated, so it cannot relay, and nothing downstream (sender_login_maps, rate limits,
DKIM signing, log lines) ever sees it.

A valid login is non-empty, at most :data:`MAX_LOGIN_CHARS` characters, has no white space
at either end, and every code point in it is printable (``str.isprintable``) or the ASCII
space: no control, format (bidi overrides, zero-width characters), surrogate (an
undecodable byte), private-use or unassigned code point, and no separator but U+0020.
Surrounding white space is refused rather than stripped: a SASL back end that authenticated
``" alice"`` has an account of that name, and stripping would hand it alice's sender
addresses and rate-limit counts.

:func:`login_key` is how logins compare: Unicode case folding (``str.casefold``), as
Postfix's table lookups fold case. ``sender_login_maps`` and the rate limits use it alike,
so ``erin``, ``Erin`` and ``ERIN`` are one user everywhere.
"""

from __future__ import annotations

import unicodedata

from milterfilters.core.context import Auth

__all__ = ["MAX_LOGIN_CHARS", "login_key", "login_problem", "trusted_auth", "valid_login"]

#: longer than any real SASL authentication identity (user@domain is at most 64 + 1 + 255)
MAX_LOGIN_CHARS = 320


def login_problem(login: str) -> str:
    """Why ``login`` cannot be trusted as a SASL identity, or ``""`` when it can."""
    if not login:
        return "empty"
    if len(login) > MAX_LOGIN_CHARS:
        return f"longer than {MAX_LOGIN_CHARS} characters"
    if login.strip() != login:
        return "white space at either end" if login.strip() else "only white space"
    for position, char in enumerate(login):
        if not char.isprintable() and char != " ":
            category = unicodedata.category(char)
            return f"code point U+{ord(char):04X} ({category}) at position {position}"
    return ""


def valid_login(login: str | None) -> bool:
    """Whether ``login`` may be trusted as the identity of an authenticated client."""
    return login is not None and not login_problem(login)


def trusted_auth(auth: Auth | None) -> Auth | None:
    """``auth`` if its login is valid, else ``None`` (the client counts as unauthenticated)."""
    return auth if auth is not None and valid_login(auth.login) else None


def login_key(login: str) -> str:
    """The form in which logins compare: case-folded (``ERIN``, ``Erin``, ``erin`` are one)."""
    return login.casefold()
