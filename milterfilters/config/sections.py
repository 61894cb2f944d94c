"""The configuration's own sections: ``[milter]``, ``[dns]``, ``[actions]``, ``[logging]``,
``[metrics]``.

Each is a frozen dataclass whose fields carry their documentation (``doc``) and whose
``validate`` refuses values that could not work, so a bad value fails at start-up, naming
the file and key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Literal

from milterfilters.core.schema import authserv_id, doc, in_range, one_line_text, reply_text

#: scores, weights and thresholds lie within plus or minus this (so that a sum stays finite)
SCORE_LIMIT = 1_000_000.0
#: the longest time any setting may give, in seconds (one day)
MAX_SECONDS = 86_400.0

#: a weight or threshold: finite and within ``SCORE_LIMIT``
score_range = in_range(-SCORE_LIMIT, SCORE_LIMIT)
#: a time limit: more than nothing, at most a day
seconds_range = in_range(0, MAX_SECONDS, above=True)


def field_name(value: str) -> None:
    """A check for a header field name we write: empty (left out), or RFC 5322 ftext
    (printable ASCII but the colon), at most 76 characters so that the field folds."""
    if value and not re.fullmatch(r"[!-9;-~]{1,76}", value):
        raise ValueError(
            "a header field name is printable ASCII without spaces or colons, "
            f"at most 76 characters; got {value!r}"
        )


@dataclass(frozen=True)
class MilterSection:
    """How the milter listens and talks to the MTA."""

    socket: str = doc(
        "where to listen: unix:/path, inet:HOST:PORT (Postfix style) or inet:PORT@HOST "
        "(libmilter style); unix sockets are fastest",
        "inet:127.0.0.1:8899",
    )
    socket_mode: str = doc("permissions of a unix socket (octal)", "0660")
    socket_group: str = doc("group of a unix socket (e.g. postfix); empty keeps the default", "")
    authserv_id: str = doc(
        "authserv-id in Authentication-Results (an RFC 8601 token such as mx.example.org); "
        "empty means this host's name",
        "",
        check=authserv_id,
    )
    name: str = doc("milter name (Sendmail's INPUT_MAIL_FILTER name)", "milterfilters", check=one_line_text)
    timeout: int = doc(
        "seconds to wait for the MTA before dropping a milter connection (1 to 86400)",
        600,
        check=in_range(1, MAX_SECONDS),
    )
    max_body_bytes: int = doc(
        "body bytes kept for content filters; the rest is counted, not stored", 10 * 1024 * 1024
    )
    stop_timeout: float = doc(
        "seconds to wait for connections to finish on SIGTERM (0 to 86400)",
        10.0,
        check=in_range(0, MAX_SECONDS),
    )
    workers: int = doc(
        "worker processes accepting on the one socket, each with its own libmilter and chain "
        "(0 to 256; 0: one per CPU, 1: a single worker). Each holds its own in-memory rate-limit counts: use "
        "[ratelimit] backend = \"redis\" for one count across them",
        0,
        check=in_range(0, 256),
    )

    def validate(self) -> None:
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            raise ValueError(f"socket_mode must be octal like 0660, got {self.socket_mode!r}") from None
        if not 0 <= mode <= 0o777:
            raise ValueError("socket_mode must be between 0000 and 0777")
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        from milterfilters.config.socketspec import parse_socket_spec

        parse_socket_spec(self.socket)

    @property
    def effective_authserv_id(self) -> str:
        return self.authserv_id or socket.getfqdn()

    @property
    def worker_count(self) -> int:
        """How many workers to run: ``workers``, or the number of CPUs when it is 0."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class DnsSection:
    """The resolver shared by SPF, DKIM and DMARC."""

    nameservers: tuple[str, ...] = doc(
        "servers to ask, as host or host:port; empty uses the system resolver",
        default_factory=tuple,
    )
    timeout: float = doc(
        "seconds per DNS query, and per message for each filter's checks (more than 0, at most 86400)",
        5.0,
        check=seconds_range,
    )
    cache_size: int = doc("answers kept in the TTL cache (negative answers included); 0 = no cache", 10000)
    lookup_budget: int = doc("DNS lookups one check may make (cache hits count) before temperror", 250)

    def validate(self) -> None:
        if self.cache_size < 0:
            raise ValueError("cache_size must not be negative")
        if self.lookup_budget < 1:
            raise ValueError("lookup_budget must be at least 1")
        from milterfilters.dns.resolver import parse_nameserver

        for spec in self.nameservers:
            parse_nameserver(spec)


@dataclass(frozen=True)
class ActionsSection:
    """Score thresholds that turn the total score into an action."""

    tag: float | None = doc(
        "score at which the message is tagged (headers, subject prefix)", 6.0, check=score_range
    )
    quarantine: float | None = doc(
        "score at which the message is quarantined at the MTA", None, check=score_range
    )
    reject: float | None = doc("score at which the message is rejected", 15.0, check=score_range)
    subject_prefix: str = doc("prefix for the Subject of tagged mail, e.g. [SPAM]", "", check=one_line_text)
    status_headers: bool = doc(
        "add our verdict headers to accepted mail: X-Milterfilters-Score/-Symbols, and the "
        "SpamAssassin-compatible ones below",
        True,
    )
    spam_flag_header: str = doc(
        "field set to YES on tagged (and quarantined) mail, as SpamAssassin's; empty leaves it out",
        "X-Spam-Flag",
        check=field_name,
    )
    spam_status_header: str = doc(
        "field with 'Yes|No, score=S required=T tests=A,B' as SpamAssassin's; empty leaves it out",
        "X-Spam-Status",
        check=field_name,
    )
    spam_score_header: str = doc(
        "field with the score (one decimal); empty leaves it out", "X-Spam-Score", check=field_name
    )
    spam_level_header: str = doc(
        "field with one * per whole point of score (at most 50); empty leaves it out",
        "X-Spam-Level",
        check=field_name,
    )
    reject_text: str = doc(
        "text of the reply when the score rejects (printable ASCII, at most 400 characters)",
        "Message rejected as spam",
        check=reply_text,
    )

    def validate(self) -> None:
        ordered = [t for t in (self.tag, self.quarantine, self.reject) if t is not None]
        if ordered != sorted(ordered):
            raise ValueError("thresholds must satisfy tag <= quarantine <= reject")


@dataclass(frozen=True)
class LoggingSection:
    """Log output."""

    level: Literal["debug", "info", "warning", "error"] = doc("log level", "info")
    format: Literal["text", "json"] = doc("one line per decision, as key=value text or JSON", "text")
    target: Literal["stderr", "syslog"] = doc(
        "where log lines go: stderr, or syslog (facility mail, ident milterfilters[pid]), "
        "beside the MTA's own lines in /var/log/mail.log",
        "stderr",
    )
    syslog_socket: str = doc("the syslog daemon's unix datagram socket, for target = syslog", "/dev/log")

    def validate(self) -> None:
        if not self.syslog_socket.startswith("/"):
            raise ValueError(f"syslog_socket must be an absolute path, got {self.syslog_socket!r}")
        one_line_text(self.syslog_socket)


#: a host name (letters, digits, dots, hyphens) or an IPv4 address in ``[metrics] listen``
_LISTEN_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT`` for IPv6) → (host, port); raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9101, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif not _LISTEN_HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or address (write IPv6 as [::1]:9101)")
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def listen_address(value: str) -> None:
    """A check that ``value`` is empty (off) or ``HOST:PORT``."""
    if value:
        parse_listen(value)


@dataclass(frozen=True)
class MetricsSection:
    """Prometheus metrics and the health check, over plain HTTP."""

    listen: str = doc(
        "HOST:PORT to serve GET /metrics (Prometheus text, all worker processes) and GET /healthz "
        "on, e.g. 127.0.0.1:9101 or [::1]:9101; no authentication, so keep it on loopback or a "
        "private network; empty turns it off",
        "",
        check=listen_address,
    )

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when metrics are off."""
        return parse_listen(self.listen) if self.listen else None
