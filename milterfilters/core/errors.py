"""The errors a user meets: a bad configuration, a bad request on the command line.

Each carries a message meant to be printed as one line; the command line turns them into
exit status 2.
"""

from __future__ import annotations

#: longest message a :class:`ConfigError` prints (the value that caused it is cut first)
MAX_MESSAGE_CHARS = 500


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one printable line: control and line-breaking characters escaped, cut at
    ``limit`` characters."""
    out = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text
    )
    return out if len(out) <= limit else out[: limit - 1] + "…"


class ConfigError(Exception):
    """A configuration problem, with the file and key path it concerns.

    Its text is always one line (hostile keys and values are escaped and cut), so that a
    refused configuration gives one log line naming the file and the key.
    """

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.message = message
        self.source = source
        self.key = key
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(one_line(f"{where}: {message}" if where else message))


class UsageError(Exception):
    """A problem with what the user asked for (bad file, bad option value)."""
