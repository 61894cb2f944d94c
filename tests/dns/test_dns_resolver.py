"""The shared resolver against a real DNS server on loopback."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from dnslib import RCODE

from milterfilters.api import default_services
from milterfilters.config import config_from_dict
from milterfilters.core.metrics import Metrics
from milterfilters.core.schema import ConfigError
from milterfilters.core.services import Services
from milterfilters.dns import (
    DnsBudgetExhausted,
    DnsError,
    DnsTemporaryError,
    DnsTimeout,
    Resolver,
    parse_nameserver,
)
from tests.support.dnsserver import DnsTestServer, Fault, Reply, Zone


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(server: DnsTestServer, **kwargs: object) -> Resolver:
    kwargs.setdefault("timeout", 1.0)
    return Resolver([server.address], **kwargs)  # type: ignore[arg-type]


def test_typed_answers(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone(
        {
            "example.com": [
                ("TXT", ["v=spf1 ", "-all"]),
                ("TXT", "other"),
                ("A", "192.0.2.1"),
                ("AAAA", "2001:db8::1"),
                ("MX", (10, "mx.example.com")),
            ],
            "alias.example.com": [("CNAME", "example.com")],
            "1.2.0.192.in-addr.arpa": [("PTR", "host.example.com")],
        }
    )
    r = make(dns_server)
    assert sorted(r.txt("example.com")) == [b"other", b"v=spf1 -all"]
    assert r.a("alias.example.com") == ["192.0.2.1"]
    assert r.aaaa("example.com") == ["2001:db8::1"]
    assert r.mx("example.com") == [(10, "mx.example.com")]
    assert r.ptr("1.2.0.192.in-addr.arpa") == ["host.example.com"]
    assert r.txt("missing.example.com") == []
    assert r.a("") == [] and r.a("a..b") == [] and r.a("x" * 64 + ".example") == []


def test_positive_answers_cached_until_ttl_expires(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({"example.com": [("A", "192.0.2.1", 30)]})
    clock = FakeClock()
    metrics = Metrics()
    r = make(dns_server, clock=clock, metrics=metrics)
    assert r.a("example.com") == ["192.0.2.1"]
    clock.now += 29
    assert r.a("EXAMPLE.com.") == ["192.0.2.1"]
    assert dns_server.count("example.com", "A") == 1
    clock.now += 1
    assert r.a("example.com") == ["192.0.2.1"]
    assert dns_server.count("example.com", "A") == 2
    assert metrics.get("dns_queries_total", type="A") == 2
    assert metrics.get("dns_cache_hits_total", type="A") == 1


def test_cname_chain_ttl_is_the_minimum(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone(
        {"alias.example.com": [("CNAME", "example.com", 5)], "example.com": [("A", "192.0.2.1", 300)]}
    )
    clock = FakeClock()
    r = make(dns_server, clock=clock)
    r.a("alias.example.com")
    clock.now += 6
    r.a("alias.example.com")
    assert dns_server.count("alias.example.com", "A") == 2


@pytest.mark.parametrize("name", ["nx.example.com", "example.com"], ids=["nxdomain", "nodata"])
def test_negative_answers_cached_for_soa_minimum(dns_server: DnsTestServer, name: str) -> None:
    dns_server.zone = Zone({"example.com": [("A", "192.0.2.1")]}, negative_ttl=20)
    clock = FakeClock()
    r = make(dns_server, clock=clock)
    assert r.txt(name) == []
    clock.now += 19
    assert r.txt(name) == []
    assert dns_server.count(name, "TXT") == 1
    clock.now += 1
    assert r.txt(name) == []
    assert dns_server.count(name, "TXT") == 2


def test_negative_answer_without_soa_is_not_cached(dns_server: DnsTestServer) -> None:
    class NoSoa(Zone):
        def lookup(self, qname: str, qtype: str) -> Reply:
            return Reply(RCODE.NXDOMAIN)

    dns_server.zone = NoSoa()
    r = make(dns_server)
    assert r.txt("nx.example.com") == [] and r.txt("nx.example.com") == []
    assert dns_server.count("nx.example.com") == 2


def test_cache_is_bounded(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({f"h{i}.example.com": [("A", f"192.0.2.{i}")] for i in range(3)})
    r = make(dns_server, cache_size=2)
    for i in (0, 1, 2, 0):
        assert r.a(f"h{i}.example.com") == [f"192.0.2.{i}"]
    assert r.cache_entries == 2
    assert dns_server.count("h0.example.com") == 2  # evicted by h2, asked again
    assert dns_server.count("h2.example.com") == 1


def test_silent_server_times_out_within_the_configured_timeout(dns_server: DnsTestServer) -> None:
    dns_server.fault("slow.example.com", Fault.SILENCE)
    metrics = Metrics()
    r = make(dns_server, timeout=0.4, metrics=metrics)
    start = time.monotonic()
    with pytest.raises(DnsTimeout):
        r.txt("slow.example.com")
    assert time.monotonic() - start < 0.4 + 0.5  # slack for a loaded machine
    assert metrics.get("dns_timeouts_total", type="TXT") == 1
    assert dns_server.count("slow.example.com") >= 1
    # A timeout is not cached as an answer: the next lookup asks again.
    with pytest.raises(DnsTimeout):
        r.txt("slow.example.com")


def test_servfail_is_a_temporary_error(dns_server: DnsTestServer) -> None:
    dns_server.fault("broken.example.com", Fault.SERVFAIL, qtype="TXT")
    dns_server.zone = Zone({"broken.example.com": [("A", "192.0.2.1"), ("TXT", "x")]})
    metrics = Metrics()
    r = make(dns_server, metrics=metrics)
    with pytest.raises(DnsTemporaryError):
        r.txt("broken.example.com")
    assert r.a("broken.example.com") == ["192.0.2.1"]
    assert metrics.get("dns_errors_total", type="TXT", kind="servfail") == 1


def test_cname_loop_is_a_permanent_error(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({"loop.example.com": [("CNAME", "loop.example.com")]})
    with pytest.raises(DnsError) as info:
        make(dns_server).a("loop.example.com")
    assert not isinstance(info.value, DnsTemporaryError)


def test_truncated_udp_answer_is_retried_over_tcp(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({"example.com": [("TXT", "v=spf1 -all")]})
    dns_server.fault("example.com", Fault.TRUNCATE)
    assert make(dns_server).txt("example.com") == [b"v=spf1 -all"]
    assert dns_server.count("example.com", transport="udp") == 1
    assert dns_server.count("example.com", transport="tcp") == 1


def test_long_txt_record_arrives_whole_over_tcp(dns_server: DnsTestServer) -> None:
    key = "v=DKIM1; k=rsa; p=" + "A" * 2000
    dns_server.zone = Zone({"sel._domainkey.example.com": [("TXT", key)]})
    r = make(dns_server)
    assert r.txt("sel._domainkey.example.com") == [key.encode()]
    assert dns_server.count(transport="tcp") == 1
    assert r.dkim_dnsfunc(b"sel._domainkey.example.com.") == key.encode()
    assert r.dkim_dnsfunc("nokey._domainkey.example.com") is None


def test_budget_counts_lookups_cache_hits_included(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({"example.com": [("A", "192.0.2.1")]})
    r = make(dns_server)
    view = r.budget(lookups=2)
    assert view.a("example.com") == ["192.0.2.1"]
    assert view.a("example.com") == ["192.0.2.1"]  # a cache hit, still counted
    with pytest.raises(DnsBudgetExhausted) as info:
        view.a("example.com")
    assert isinstance(info.value, DnsTemporaryError)
    assert dns_server.count() == 1
    assert r.budget(lookups=1).a("example.com") == ["192.0.2.1"]  # a new check, a new budget


def test_budget_bounds_the_time_of_a_whole_check(dns_server: DnsTestServer) -> None:
    dns_server.fault("slow.example.com", Fault.SILENCE)
    r = make(dns_server, timeout=5.0)
    view = r.budget(seconds=0.3)
    start = time.monotonic()
    with pytest.raises(DnsTemporaryError):
        view.txt("slow.example.com")
    with pytest.raises(DnsBudgetExhausted):
        view.txt("slow.example.com")
    assert time.monotonic() - start < 1.5  # far below the resolver's 5 s per query


def test_concurrent_lookups_from_many_threads(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({f"h{i}.example.com": [("A", f"192.0.2.{i}")] for i in range(20)})
    r = make(dns_server)
    errors: list[str] = []

    def work(offset: int) -> None:
        for i in range(20):
            n = (i + offset) % 20
            if r.a(f"h{n}.example.com") != [f"192.0.2.{n}"]:
                errors.append(f"h{n}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert r.cache_entries == 20


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_nameserver(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["dns.example.com", "127.0.0.1:0", "127.0.0.1:x", "[::1", "1.2.3.4:70000"])
def test_bad_nameserver_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        config_from_dict({"dns": {"nameservers": [spec]}})


def test_make_resolver_follows_dns_section(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone({"example.com": [("TXT", "hello")]})
    config = config_from_dict(
        {"dns": {"nameservers": [dns_server.address], "timeout": 0.5, "lookup_budget": 3}}
    )
    services = default_services(config)
    resolver = services.resolver
    assert isinstance(resolver, Resolver)
    assert resolver.timeout == 0.5 and resolver.lookup_budget == 3
    assert resolver.txt("example.com") == [b"hello"]
    assert services.metrics.get("dns_queries_total", type="TXT") == 1


def test_zone_from_zone_file_text(dns_server: DnsTestServer) -> None:
    dns_server.zone = Zone.from_text(
        """
$ORIGIN example.org.
@        3600 IN TXT  "v=spf1 mx -all"
@             IN MX   10 mail
mail          IN A    192.0.2.25
www           IN CNAME mail
"""
    )
    r = make(dns_server)
    assert r.txt("example.org") == [b"v=spf1 mx -all"]
    assert r.mx("example.org") == [(10, "mail.example.org")]
    assert r.a("www.example.org") == ["192.0.2.25"]


def test_threads_asking_at_once_share_one_resolver() -> None:
    # the first messages of a busy start-up arrive together: one cache, not one per thread
    built: list[object] = []

    def slow_factory() -> object:
        time.sleep(0.05)
        built.append(object())
        return built[-1]

    services = Services(resolver_factory=slow_factory)
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: services.resolver, range(8)))
    assert len(built) == 1 and all(r is built[0] for r in seen)
