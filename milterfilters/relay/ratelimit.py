"""Rate limits: messages and recipients per time window, per SASL user and per client IP.

The compromised-account case: a stolen password or a hijacked web form sends as fast as
the server lets it. Messages are counted at MAIL FROM and recipients at RCPT TO (only
those the filters before this one let through, since a refused recipient ends the stage);
over a limit the client gets ``451 4.7.1`` and may retry once its window has room.
A refused attempt is not counted.

Who is counted: a SASL login case-folded (``erin``, ``Erin`` and ``ERIN`` share one count,
as relay's ``sender_login_maps`` see one user; logins are validated before the chain trusts
them, :mod:`milterfilters.core.logins`), and a client address, IPv6 grouped per
``ipv6_prefix`` network (a /64 by default: one host usually holds a whole /64 and could
rotate through it). When the MTA passes no client address (``{client_addr}`` unknown, a
unix-socket client) there is nothing to count per IP, but the per-user limits still hold.

Counts live in process memory by default, or in Redis so that every milter process and
host shares one count. When Redis cannot be reached, ``backend_failure`` chooses: ``open``
lets the mail through, ``closed`` tempfails it; either way the failure is logged and
counted as ``ratelimit_backend_errors_total``.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from typing import ClassVar, Literal

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.logins import login_key
from milterfilters.core.schema import doc
from milterfilters.core.services import Services
from milterfilters.core.verdict import Finding, SmtpReply, Verdict
from milterfilters.mail.networks import NetworkSet, parse_network
from milterfilters.relay.backends import BackendUnavailable, MemoryBackend, RateLimitBackend, RedisBackend

log = logging.getLogger("milterfilters.ratelimit")

#: at most one "backend unavailable" warning per this many seconds
_FAILURE_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class RateLimitOptions:
    window_seconds: int = doc("length of the sliding window, in seconds", 3600)
    messages_per_user: int = doc("messages a SASL login may send per window; 0 = no limit", 0)
    recipients_per_user: int = doc("recipients a SASL login may send to per window; 0 = no limit", 0)
    messages_per_ip: int = doc(
        "messages per window from one client IP (IPv6: one ipv6_prefix network); 0 = no limit", 0
    )
    recipients_per_ip: int = doc("recipients per window from one client IP; 0 = no limit", 0)
    ipv6_prefix: int = doc(
        "IPv6 clients are counted per network of this prefix length, so that one host cannot "
        "rotate through the addresses of its /64; 128 counts every address on its own",
        64,
    )
    exempt_networks: tuple[str, ...] = doc("clients (CIDR) never limited", ())
    backend: Literal["memory", "redis"] = doc(
        "where counts live: memory (this process) or redis (shared by every milter using redis_url)",
        "memory",
    )
    redis_url: str = doc(
        "Redis server, as redis://host:port/db or unix:///path/to/socket", "redis://127.0.0.1:6379/0"
    )
    redis_timeout: float = doc("seconds to wait for Redis before backend_failure applies", 0.5)
    redis_retry_interval: float = doc(
        "after a Redis failure, seconds during which backend_failure applies at once without asking Redis",
        2.0,
    )
    key_prefix: str = doc("prefix of the Redis keys", "milterfilters:ratelimit:")
    max_tracked_keys: int = doc("memory backend: keys kept at most (least recently used go first)", 100_000)
    backend_failure: Literal["open", "closed"] = doc(
        "when the backend fails: open lets mail through, closed tempfails it (451 4.7.1)", "open"
    )

    def validate(self) -> None:
        if self.window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        limits = (
            self.messages_per_user,
            self.recipients_per_user,
            self.messages_per_ip,
            self.recipients_per_ip,
        )
        if any(limit < 0 for limit in limits):
            raise ValueError("limits must not be negative")
        if not 1 <= self.ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be between 1 and 128")
        if self.redis_timeout <= 0:
            raise ValueError("redis_timeout must be positive")
        if self.redis_retry_interval < 0:
            raise ValueError("redis_retry_interval must not be negative")
        if self.max_tracked_keys < 1:
            raise ValueError("max_tracked_keys must be at least 1")
        for entry in self.exempt_networks:
            try:
                parse_network(entry)
            except ValueError as e:
                raise ValueError(f"invalid network {entry!r}: {e}") from None


@dataclass(frozen=True)
class _Limit:
    """One limit to check: what is counted, for whom, and how many are allowed."""

    what: Literal["messages", "recipients"]
    who: str  # "user:alice" or "ip:192.0.2.1"
    limit: int


class RateLimitFilter(Filter):
    """Tempfails clients that send more messages or recipients per window than allowed."""

    name = "ratelimit"
    Options = RateLimitOptions
    symbols: ClassVar[dict[str, float]] = {
        "RATELIMIT_EXCEEDED": 0.0,  # comes with a direct tempfail
        "RATELIMIT_BACKEND_UNAVAILABLE": 0.0,
    }
    enabled_by_default = False
    options: RateLimitOptions

    def __init__(self, options: RateLimitOptions, services: Services) -> None:
        super().__init__(options, services)
        self.exempt = NetworkSet(options.exempt_networks)
        self.backend: RateLimitBackend
        if options.backend == "redis":
            self.backend = RedisBackend(
                options.redis_url,
                prefix=options.key_prefix,
                timeout=options.redis_timeout,
                retry_interval=options.redis_retry_interval,
            )
        else:
            self.backend = MemoryBackend(options.max_tracked_keys)
        self._log_lock = threading.Lock()
        self._last_failure_log = float("-inf")

    def close(self) -> None:
        self.backend.close()

    def client_key(self, ctx: Context) -> str | None:
        """The per-IP key of the client (IPv6 grouped per ``ipv6_prefix``); None if unknown."""
        ip = ctx.connection.ip
        if ip is None:
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            return f"ip:{ipaddress.IPv6Network((ip, self.options.ipv6_prefix), strict=False)}"
        return f"ip:{ip}"

    @staticmethod
    def user_key(ctx: Context) -> str | None:
        """The per-user key: the case-folded SASL login, as relay's sender_login_maps compare it."""
        if ctx.auth is None or not ctx.auth.login:
            return None
        return f"user:{login_key(ctx.auth.login)}"

    def is_exempt(self, ctx: Context) -> bool:
        """Whether the client is in ``exempt_networks`` (an unknown address never is)."""
        ip = ctx.connection.ip
        return ip is not None and ip in self.exempt

    def _limits(self, ctx: Context, what: Literal["messages", "recipients"]) -> list[_Limit]:
        o = self.options
        per_user, per_ip = (
            (o.messages_per_user, o.messages_per_ip)
            if what == "messages"
            else (o.recipients_per_user, o.recipients_per_ip)
        )
        if self.is_exempt(ctx):
            return []  # exempt clients are exempt whoever they log in as
        keyed = ((self.user_key(ctx), per_user), (self.client_key(ctx), per_ip))
        # a client whose address the MTA did not pass has no per-IP count, but its login does
        return [_Limit(what, who, limit) for who, limit in keyed if who is not None and limit]

    def _backend_failed(self, error: BackendUnavailable) -> Verdict | None:
        self.services.metrics.inc("ratelimit_backend_errors_total", backend=self.options.backend)
        now = self.services.clock()
        with self._log_lock:
            if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL:
                self._last_failure_log = now
                log.warning(
                    "ratelimit: backend unavailable (%s); failing %s", error, self.options.backend_failure
                )
        finding = Finding("RATELIMIT_BACKEND_UNAVAILABLE", str(error)[:200])
        if self.options.backend_failure == "closed":
            return Verdict.tempfail(
                SmtpReply(451, "4.7.1", "Temporary failure in rate limiting, try again later"), finding
            )
        return Verdict.found(finding)

    def _check(self, ctx: Context, what: Literal["messages", "recipients"]) -> Verdict | None:
        now = self.services.clock()
        for limit in self._limits(ctx, what):
            try:
                result = self.backend.acquire(
                    f"{what}:{limit.who}", 1, limit.limit, self.options.window_seconds, now
                )
            except BackendUnavailable as e:
                return self._backend_failed(e)
            if not result.allowed:
                self.services.metrics.inc("ratelimit_exceeded_total", what=what, who=limit.who.split(":")[0])
                return Verdict.tempfail(
                    SmtpReply(451, "4.7.1", f"Rate limit exceeded: too many {what}, try again later"),
                    Finding(
                        "RATELIMIT_EXCEEDED",
                        f"{what} for {limit.who}: {limit.limit} per {self.options.window_seconds}s",
                    ),
                )
        return None

    def mail(self, ctx: Context) -> Verdict | None:
        return self._check(ctx, "messages")

    def rcpt(self, ctx: Context) -> Verdict | None:
        return self._check(ctx, "recipients")
