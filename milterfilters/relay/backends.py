"""Rate-limit counters: a sliding-window count per key, in process memory or in Redis.

The window is approximated the way Cloudflare's and nginx's limiters do it: two fixed
windows, the current one counted in full and the previous one weighted by how much of it
the sliding window still covers. That needs two integers per key, whatever the traffic.

``acquire`` is check-and-increment in one atomic step: a request over the limit is refused
and *not* counted, so a client that keeps retrying recovers as soon as its earlier
requests age out, rather than being locked out by its own retries.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class BackendUnavailable(Exception):
    """The shared counter store cannot be reached (or answered garbage)."""


@dataclass(frozen=True)
class Window:
    """Where ``now`` falls in fixed windows of ``seconds``: index and previous-window weight."""

    index: int
    previous_weight: float

    @classmethod
    def at(cls, now: float, seconds: int) -> Window:
        index = math.floor(now / seconds)
        elapsed = now - index * seconds
        return cls(index=index, previous_weight=max(0.0, 1.0 - elapsed / seconds))


@dataclass(frozen=True)
class Acquired:
    """The outcome of one :meth:`RateLimitBackend.acquire` call."""

    allowed: bool
    #: the sliding-window count before this request
    count: float


class RateLimitBackend(Protocol):
    """Somewhere to keep counts."""

    def acquire(self, key: str, cost: int, limit: int, window_seconds: int, now: float) -> Acquired:
        """Add ``cost`` to ``key`` unless that takes its sliding-window count over ``limit``."""
        ...

    def close(self) -> None: ...


def _estimate(current: int, previous: int, window: Window) -> float:
    return current + previous * window.previous_weight


class MemoryBackend:
    """Counts in this process: thread-safe, and bounded to ``max_keys`` keys.

    When full, the least recently used key is forgotten (its client starts from zero):
    memory stays bounded whatever the number of clients, at the price of leniency
    towards a client that was idle while ``max_keys`` others were busy.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (window index, count in that window, count in the window before)
        self._counts: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def acquire(self, key: str, cost: int, limit: int, window_seconds: int, now: float) -> Acquired:
        window = Window.at(now, window_seconds)
        with self._lock:
            index, current, previous = self._counts.get(key, (window.index, 0, 0))
            if index != window.index:
                previous = current if index == window.index - 1 else 0
                current = 0
            count = _estimate(current, previous, window)
            allowed = count + cost <= limit
            if allowed:
                current += cost
            self._counts[key] = (window.index, current, previous)
            self._counts.move_to_end(key)
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
        return Acquired(allowed, count)

    def close(self) -> None:
        with self._lock:
            self._counts.clear()


# KEYS: current window, previous window. ARGV: cost, limit, previous weight, ttl.
# Returns {allowed (0/1), current count before, previous count}.
_ACQUIRE_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local cost = tonumber(ARGV[1])
if current + previous * tonumber(ARGV[3]) + cost > tonumber(ARGV[2]) then
  return {0, current, previous}
end
redis.call('INCRBY', KEYS[1], cost)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, current, previous}
"""


class RedisBackend:
    """Counts in Redis, shared by every milter process that uses the same server and prefix.

    Each check-and-increment is one Lua script, atomic on the server. Keys expire two
    windows after their last increment, so Redis memory is bounded by the active keys.
    Any Redis error becomes :class:`BackendUnavailable`; for ``retry_interval`` seconds
    after one, calls fail at once instead of waiting out another timeout, so an outage
    does not add ``timeout`` to every SMTP command.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "milterfilters:ratelimit:",
        timeout: float = 0.5,
        retry_interval: float = 2.0,
    ) -> None:
        import redis

        self.prefix = prefix
        self.retry_interval = retry_interval
        self._down_since: float | None = None
        self._down_reason = ""
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        self._script: Callable[..., Any] = self._client.register_script(_ACQUIRE_LUA)

    def acquire(self, key: str, cost: int, limit: int, window_seconds: int, now: float) -> Acquired:
        down_since = self._down_since
        if down_since is not None and 0 <= now - down_since < self.retry_interval:
            raise BackendUnavailable(f"{self._down_reason} (not retried for {self.retry_interval:g}s)")
        window = Window.at(now, window_seconds)
        base = f"{self.prefix}{window_seconds}:{key}:"
        keys = [f"{base}{window.index}", f"{base}{window.index - 1}"]
        args = [cost, limit, repr(window.previous_weight), 2 * window_seconds]
        try:
            allowed, current, previous = self._script(keys=keys, args=args)
            result = Acquired(bool(allowed), _estimate(int(current), int(previous), window))
        except self._errors as e:
            raise self._failed(now, f"redis: {type(e).__name__}: {e}") from e
        except (TypeError, ValueError) as e:
            raise self._failed(now, f"redis answered something unexpected: {e}") from e
        self._down_since = None
        return result

    def _failed(self, now: float, reason: str) -> BackendUnavailable:
        self._down_since, self._down_reason = now, reason
        return BackendUnavailable(reason)

    def close(self) -> None:
        try:
            self._client.close()
        except self._errors:
            pass
