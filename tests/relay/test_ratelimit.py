"""Rate limits: counters in memory and in a real redis-server, and the filter in the chain."""

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import milterfilters
from milterfilters.config import config_from_dict
from milterfilters.core.services import Services
from milterfilters.relay.backends import BackendUnavailable, MemoryBackend, RedisBackend, Window
from tests.support.redisserver import RedisTestServer

MESSAGE = b"Subject: rate\r\n\r\nhello\r\n"
WINDOW = 3600


class FakeClock:
    """A clock the test moves by hand (``Services.clock``)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_chain(clock: FakeClock, **options: Any) -> milterfilters.Chain:
    config = config_from_dict(
        {
            "relay": {"local_domains": ["example.org"]},
            "ratelimit": {"enabled": True, "window_seconds": WINDOW, **options},
        }
    )
    return milterfilters.build_chain(config, services=Services(clock=clock))


def send(
    chain: milterfilters.Chain, *, ip: str = "203.0.113.5", user: str | None = None, rcpts: int = 1
) -> Any:
    return milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip=ip,
        auth_user=user,
        mail_from="sender@example.net",
        recipients=[f"r{i}@example.org" for i in range(rcpts)],
    )


def is_rate_limited(outcome: milterfilters.Outcome) -> bool:
    reply = outcome.decision.reply
    return (
        outcome.action is milterfilters.Action.TEMPFAIL
        and reply is not None
        and (reply.code, reply.enhanced) == (451, "4.7.1")
        and "RATELIMIT_EXCEEDED" in outcome.decision.symbols
    )


# -- the sliding window ------------------------------------------------------------------


def test_window_position() -> None:
    assert Window.at(7200.0, 3600) == Window(2, 1.0)
    assert Window.at(7200.0 + 900, 3600) == Window(2, 0.75)
    assert Window.at(7199.999, 3600).index == 1


def test_memory_backend_trips_and_recovers() -> None:
    backend, clock = MemoryBackend(), FakeClock(3600.0 * 1000)
    assert [backend.acquire("k", 1, 3, WINDOW, clock()).allowed for _ in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    clock.advance(WINDOW)  # the sliding window still covers all of the previous one
    assert not backend.acquire("k", 1, 3, WINDOW, clock()).allowed
    clock.advance(WINDOW / 3)  # a third of the old window has slid out: one slot free
    assert backend.acquire("k", 1, 3, WINDOW, clock()).allowed
    assert not backend.acquire("k", 1, 3, WINDOW, clock()).allowed
    clock.advance(2 * WINDOW)
    assert [backend.acquire("k", 1, 3, WINDOW, clock()).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert backend.acquire("other", 1, 3, WINDOW, clock()).allowed  # keys are independent


def test_memory_backend_is_bounded() -> None:
    backend = MemoryBackend(max_keys=3)
    for i in range(10):
        backend.acquire(f"k{i}", 1, 1, WINDOW, 0.0)
    assert len(backend) == 3
    assert backend.acquire("k0", 1, 1, WINDOW, 0.0).allowed  # forgotten: starts again
    assert not backend.acquire("k9", 1, 1, WINDOW, 0.0).allowed  # recent: remembered


def hammer(backend: Any, *, threads: int, attempts: int, limit: int) -> int:
    allowed = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        mine = sum(backend.acquire("shared", 1, limit, WINDOW, 0.0).allowed for _ in range(attempts))
        with lock:
            allowed.append(mine)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(allowed)


def test_memory_backend_is_thread_safe() -> None:
    assert hammer(MemoryBackend(), threads=8, attempts=500, limit=1000) == 1000


# -- the filter in the chain -----------------------------------------------------------


def test_messages_per_user_trip_and_recover() -> None:
    clock = FakeClock()
    chain = make_chain(clock, messages_per_user=3)
    outcomes = [send(chain, user="alice") for _ in range(4)]
    assert [is_rate_limited(o) for o in outcomes] == [False, False, False, True]
    assert outcomes[3].stage is milterfilters.Stage.MAIL
    assert not is_rate_limited(send(chain, user="bob"))  # per user
    assert not is_rate_limited(send(chain))  # unauthenticated: no user limit
    clock.advance(2 * WINDOW)
    assert not is_rate_limited(send(chain, user="alice"))


def test_refused_attempts_are_not_counted() -> None:
    clock = FakeClock(3600.0 * 500)
    chain = make_chain(clock, messages_per_ip=2)
    assert [is_rate_limited(send(chain)) for _ in range(2)] == [False, False]
    for _ in range(50):  # a client retrying hard
        assert is_rate_limited(send(chain))
    clock.advance(2 * WINDOW)
    assert [is_rate_limited(send(chain)) for _ in range(3)] == [False, False, True]


def test_recipients_per_ip_are_counted_per_recipient() -> None:
    clock = FakeClock()
    chain = make_chain(clock, recipients_per_ip=5)
    first = send(chain, rcpts=3)
    assert first.action is milterfilters.Action.ACCEPT
    second = send(chain, rcpts=3)
    answers = [r.as_dict()["action"] for r in second.recipients]
    assert answers == ["accept", "accept", "tempfail"]
    assert second.action is milterfilters.Action.ACCEPT  # delivered to the two within the limit
    refused = second.recipients[2].decision
    assert refused.reply is not None and (refused.reply.code, refused.reply.enhanced) == (451, "4.7.1")


def test_relay_refusals_do_not_use_up_the_recipient_limit() -> None:
    chain = make_chain(FakeClock(), recipients_per_ip=2)
    outcome = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="203.0.113.5",
        mail_from="",
        recipients=["a@remote.test"] * 5 + ["a@example.org"] * 3,
    )
    assert [r.as_dict()["action"] for r in outcome.recipients] == ["reject"] * 5 + [
        "accept",
        "accept",
        "tempfail",
    ]


def test_ipv6_clients_are_counted_per_prefix_and_exempt_networks_are_not_counted() -> None:
    chain = make_chain(FakeClock(), messages_per_ip=2, exempt_networks=["192.0.2.0/24"])
    assert not is_rate_limited(send(chain, ip="2001:db8:5:6::1"))
    assert not is_rate_limited(send(chain, ip="2001:db8:5:6::2"))
    assert is_rate_limited(send(chain, ip="2001:db8:5:6:ffff::3"))  # same /64
    assert not is_rate_limited(send(chain, ip="2001:db8:5:7::1"))  # next /64
    assert all(not is_rate_limited(send(chain, ip="192.0.2.1", user="alice")) for _ in range(5))


def test_user_and_ip_limits_both_apply() -> None:
    chain = make_chain(FakeClock(), messages_per_user=10, messages_per_ip=2)
    assert [is_rate_limited(send(chain, user="alice")) for _ in range(3)] == [False, False, True]
    assert not is_rate_limited(send(chain, user="alice", ip="198.51.100.1"))


def test_disabled_by_default() -> None:
    assert "ratelimit" not in [link.name for link in milterfilters.build_chain().links]


@pytest.mark.parametrize(
    "options",
    [
        {"window_seconds": 0},
        {"messages_per_ip": -1},
        {"ipv6_prefix": 129},
        {"backend": "memcached"},
        {"exempt_networks": ["x"]},
        {"redis_timeout": 0},
    ],
)
def test_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(milterfilters.ConfigError):
        config_from_dict({"ratelimit": options})


# -- Redis: one count for several milters ----------------------------------------------


@pytest.fixture
def redis_options(redis_server: RedisTestServer) -> dict[str, Any]:
    return {"backend": "redis", "redis_url": redis_server.url, "key_prefix": f"test:{uuid.uuid4().hex}:"}


def test_two_chains_sharing_redis_enforce_one_limit(redis_options: dict[str, Any]) -> None:
    clock = FakeClock()
    first = make_chain(clock, messages_per_user=4, recipients_per_ip=6, **redis_options)
    second = make_chain(clock, messages_per_user=4, recipients_per_ip=6, **redis_options)
    results = [is_rate_limited(send(chain, user="alice", ip="198.51.100.9")) for chain in (first, second) * 3]
    assert results == [False, False, False, False, True, True]
    # recipients: 4 messages x 1 recipient already counted for this IP; 2 left, shared
    outcome = send(second, ip="198.51.100.9", rcpts=3)
    assert [r.as_dict()["action"] for r in outcome.recipients] == ["accept", "accept", "tempfail"]
    clock.advance(2 * WINDOW)
    assert not is_rate_limited(send(first, user="alice", ip="198.51.100.9"))
    first.close()
    second.close()


def test_redis_backend_is_atomic(redis_server: RedisTestServer) -> None:
    backend = RedisBackend(redis_server.url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        assert hammer(backend, threads=4, attempts=60, limit=100) == 100
    finally:
        backend.close()


def test_redis_keys_expire(redis_server: RedisTestServer) -> None:
    import redis

    prefix = f"test:{uuid.uuid4().hex}:"
    backend = RedisBackend(redis_server.url, prefix=prefix)
    backend.acquire("k", 1, 5, 60, 0.0)
    client = redis.Redis.from_url(redis_server.url)
    (key,) = client.keys(f"{prefix}*")
    assert 0 < client.ttl(key) <= 120
    client.close()
    backend.close()


@pytest.mark.parametrize(("mode", "limited"), [("open", False), ("closed", True)])
def test_unreachable_redis(mode: str, limited: bool, unused_port: int) -> None:
    url = f"redis://127.0.0.1:{unused_port}/0"  # nothing listens there
    clock = FakeClock()
    config = config_from_dict(
        {
            "relay": {"local_domains": ["example.org"]},
            "ratelimit": {
                "enabled": True,
                "messages_per_ip": 1,
                "backend": "redis",
                "redis_url": url,
                "backend_failure": mode,
            },
        }
    )
    services = Services(clock=clock)
    chain = milterfilters.build_chain(config, services=services)
    outcomes = [send(chain) for _ in range(3)]
    for outcome in outcomes:
        assert "RATELIMIT_BACKEND_UNAVAILABLE" in outcome.decision.symbols
        if limited:
            assert (
                outcome.action is milterfilters.Action.TEMPFAIL and outcome.stage is milterfilters.Stage.MAIL
            )
            assert outcome.decision.reply is not None and outcome.decision.reply.code == 451
        else:
            assert outcome.action is milterfilters.Action.ACCEPT
    assert services.metrics.get("ratelimit_backend_errors_total", backend="redis") == 3
    assert not any(outcome.decision.errors for outcome in outcomes)  # handled, not a filter crash


def test_redis_outage_and_recovery(
    redis_server_factory: Callable[[], RedisTestServer], caplog: pytest.LogCaptureFixture
) -> None:
    private_redis = redis_server_factory()
    clock = FakeClock()
    chain = make_chain(clock, messages_per_ip=100, backend="redis", redis_url=private_redis.url)
    assert send(chain).decision.symbols == ()
    private_redis.stop()
    with caplog.at_level("WARNING", logger="milterfilters.ratelimit"):
        down = [send(chain) for _ in range(3)]
    assert all("RATELIMIT_BACKEND_UNAVAILABLE" in o.decision.symbols for o in down)
    assert len([r for r in caplog.records if "backend unavailable" in r.getMessage()]) == 1  # throttled
    private_redis.start()
    # for redis_retry_interval after a failure, Redis is not asked: no timeout per command
    assert "RATELIMIT_BACKEND_UNAVAILABLE" in send(chain).decision.symbols
    clock.advance(2.5)
    assert send(chain).decision.symbols == ()
    chain.close()


def test_backend_unavailable_is_the_only_error(unused_port: int) -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{unused_port}/0", timeout=0.2)
    with pytest.raises(BackendUnavailable):
        backend.acquire("k", 1, 1, 60, 0.0)
