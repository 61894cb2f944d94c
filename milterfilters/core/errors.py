"""The errors a user meets: a bad configuration, a bad request on the command line.

Each carries a message meant to be printed as one line; the command line turns them into
exit status 2.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem, with the file and key path it concerns."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.message = message
        self.source = source
        self.key = key
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class UsageError(Exception):
    """A problem with what the user asked for (bad file, bad option value)."""
