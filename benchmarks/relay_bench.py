"""How fast the relay decision and the rate-limit counters are.

Run from the checkout:  .venv/bin/python benchmarks/relay_bench.py
Starts a private redis-server on a free loopback port for the Redis figures (skipped, and said
so, when redis-server is not installed).
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import milterfilters
from milterfilters.config import config_from_dict
from milterfilters.core.context import Connection
from milterfilters.mail.addresses import parse_forward_path
from milterfilters.relay.backends import MemoryBackend, RedisBackend

ADDRESSES = [
    "user@example.org",
    "<First.Last+tag@Sub.Example.ORG.>",
    '"john doe"@example.org',
    "victim%remote.test@example.org",
    "@a.example,@b.example:user@c.example",
    "user@[IPv6:2001:db8::25]",
    "jörg@bücher.example",
    "bounces+SRS=abc=de=example.net=someone-" + "x" * 60 + "@example.org",
]


def rate(label: str, n: int, fn: Callable[[], object], repeat: int = 5) -> None:
    """Print the best-of-``repeat`` throughput of ``n`` calls of ``fn``."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        timings.append(time.perf_counter() - start)
    best, median = min(timings) / n, statistics.median(timings) / n
    print(f"{label:<54} {1 / best:>10,.0f}/s  {best * 1e6:>7.2f} µs each (median {median * 1e6:.2f})")


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    it = itertools.cycle(ADDRESSES)
    rate("parse_forward_path (mixed forms)", 40_000, lambda: parse_forward_path(next(it)))

    config = config_from_dict(
        {
            "relay": {
                "local_domains": ["example.org", ".example.org", "bücher.example"],
                "relay_domains": ["c.example"],
            }
        }
    )
    chain = milterfilters.build_chain(config)
    session = chain.session(Connection(client_address="203.0.113.5", family="inet"))
    session.connect()
    session.helo("client.example")
    rcpts = itertools.cycle(ADDRESSES)

    def transaction() -> None:
        session.mail("sender@example.net")
        session.rcpt(next(rcpts))

    rate("chain MAIL + RCPT decision, untrusted client", 20_000, transaction)

    memory = MemoryBackend()
    keys = itertools.cycle([f"ip:198.51.{i % 256}.{i % 199}" for i in range(50_000)])
    rate(
        "MemoryBackend.acquire (many keys)",
        100_000,
        lambda: memory.acquire(next(keys), 1, 1_000_000, 3600, time.time()),
    )

    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed: Redis figures skipped")
        return
    from tests.support.redisserver import RedisTestServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisTestServer(Path(tmp)).start()
        try:
            redis = RedisBackend(server.url, prefix="bench:")
            rate(
                "RedisBackend.acquire (Lua, loopback TCP, one client)",
                5_000,
                lambda: redis.acquire("user:alice", 1, 10**9, 3600, time.time()),
            )
            redis.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
