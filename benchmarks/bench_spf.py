"""SPF check cost and DNS cache behaviour, against the loopback DNS test server.

Prints:
* µs per check with a warm cache (every answer cached),
* µs per check with a cold cache (every lookup goes over UDP to the loopback server),
* the cache hit ratio on a realistic sender mix: sender domains drawn from a Zipf
  distribution (a few big senders, a long tail), many of them including the same few
  providers' records, with record TTLs of 5 minutes to a day and 20 messages/second.

Run: ``.venv/bin/python benchmarks/bench_spf.py [--checks N] [--messages N]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from milterfilters.api import default_services
from milterfilters.config import config_from_dict
from milterfilters.core.context import Connection, Context, Envelope
from milterfilters.core.metrics import Metrics
from milterfilters.core.services import Services
from milterfilters.core.stages import Stage
from milterfilters.dns import Resolver
from milterfilters.spf.filter import SpfFilter
from tests.support.dnsserver import DnsTestServer, Zone

PROVIDERS = 8
DOMAINS = 2000


def build_zone(rng: random.Random) -> Zone:
    """Sender domains: a third host their own servers, the rest include one or two providers."""
    records: dict[str, list[tuple[str, object, int]]] = {}
    for p in range(PROVIDERS):
        records[f"_spf.provider{p}.test"] = [
            ("TXT", f"v=spf1 ip4:10.{p}.0.0/16 ip4:172.16.{p}.0/24 include:_net.provider{p}.test ~all", 3600)
        ]
        records[f"_net.provider{p}.test"] = [("TXT", f"v=spf1 ip6:2001:db8:{p}::/48 -all", 3600)]
    for d in range(DOMAINS):
        ttl = rng.choice([300, 600, 3600, 86400])
        if d % 3 == 0:
            records[f"d{d}.test"] = [
                ("TXT", "v=spf1 mx a -all", ttl),
                ("MX", (10, f"mx.d{d}.test"), ttl),
                ("A", "192.0.2.1", ttl),
            ]
            records[f"mx.d{d}.test"] = [("A", f"192.0.2.{d % 250 + 2}", ttl)]
        else:
            includes = " ".join(f"include:_spf.provider{(d + k) % PROVIDERS}.test" for k in range(1 + d % 2))
            records[f"d{d}.test"] = [("TXT", f"v=spf1 {includes} -all", ttl)]
    return Zone(records)


def sender_ip(domain: int) -> str:
    """A legitimate client IP for the sender (the last mechanism that can match)."""
    if domain % 3 == 0:
        return f"192.0.2.{domain % 250 + 2}"
    return f"10.{(domain + domain % 2) % PROVIDERS}.1.1"


def make_filter(resolver: Resolver) -> SpfFilter:
    config = config_from_dict(
        {"spf": {"enabled": True, "trusted_networks": []}, "milter": {"authserv_id": "mx.test"}}
    )
    services = default_services(config, Services(metrics=resolver.metrics, resolver_factory=lambda: resolver))
    return SpfFilter(config.filter("spf").options, services)


def context(domain: int) -> Context:
    return Context(
        stage=Stage.MAIL,
        connection=Connection(client_address=sender_ip(domain)),
        helo=f"mx.d{domain}.test",
        envelope=Envelope(mail_from=f"user@d{domain}.test"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000, help="checks per timed run")
    parser.add_argument("--messages", type=int, default=50000, help="messages in the sender mix")
    args = parser.parse_args()
    rng = random.Random(7208)
    with DnsTestServer(build_zone(rng)) as server:
        # Warm: the same few senders, all answers cached after the first round.
        resolver = Resolver([server.address], timeout=2.0)
        spf = make_filter(resolver)
        contexts = [context(d) for d in range(50)]
        for ctx in contexts:
            spf.mail(ctx)
        start = time.perf_counter()
        for i in range(args.checks):
            spf.mail(contexts[i % len(contexts)])
        warm = (time.perf_counter() - start) / args.checks * 1e6

        # Cold: an empty cache for every check; every lookup goes to the loopback server.
        resolver = Resolver([server.address], timeout=2.0, cache_size=0)
        spf = make_filter(resolver)
        cold_checks = max(1, args.checks // 4)
        start = time.perf_counter()
        for i in range(cold_checks):
            spf.mail(contexts[i % len(contexts)])
        cold = (time.perf_counter() - start) / cold_checks * 1e6
        queries_per_check = resolver.metrics.total("dns_queries_total") / cold_checks

        # Mix: Zipf-distributed senders, simulated clock at 20 messages/second.
        clock = [0.0]
        metrics = Metrics()
        resolver = Resolver(
            [server.address], timeout=2.0, cache_size=10000, metrics=metrics, clock=lambda: clock[0]
        )
        spf = make_filter(resolver)
        weights = [1 / (rank + 1) ** 1.1 for rank in range(DOMAINS)]
        senders = rng.choices(range(DOMAINS), weights=weights, k=args.messages)
        results: dict[str, int] = {}
        for d in senders:
            clock[0] += 0.05
            verdict = spf.mail(context(d))
            assert verdict is not None
            for f in verdict.findings:
                results[f.symbol] = results.get(f.symbol, 0) + 1
        hits = metrics.total("dns_cache_hits_total")
        misses = metrics.total("dns_queries_total")

    print(f"SPF check (MAIL FROM + HELO), warm cache : {warm:8.1f} µs/check  ({args.checks} checks)")
    print(
        f"SPF check (MAIL FROM + HELO), cold cache : {cold:8.1f} µs/check  "
        f"({cold_checks} checks, {queries_per_check:.1f} loopback queries each)"
    )
    print(
        f"cache hit ratio, Zipf sender mix       : {hits / (hits + misses):8.1%}  "
        f"({args.messages} messages from {len(set(senders))} of {DOMAINS} domains over "
        f"{clock[0] / 60:.0f} simulated minutes; {hits} hits, {misses} queries, "
        f"{resolver.cache_entries} cached)"
    )
    print("results:", ", ".join(f"{k}={v}" for k, v in sorted(results.items())))


if __name__ == "__main__":
    main()
