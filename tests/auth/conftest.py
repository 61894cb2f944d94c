"""Fixtures for the authentication tests: one Ed25519 signing key, and the DNS server on
loopback serving the zone a test module describes in ``zone_records(key)``."""

from __future__ import annotations

import pytest

from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from tests.support.dnsserver import DnsTestServer, Zone


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    """A fresh Ed25519 signing key (its public record goes into the module's zone)."""
    return generate_key("ed25519")[1]


@pytest.fixture
def dns(dns_server: DnsTestServer, key: PrivateKey, request: pytest.FixtureRequest) -> DnsTestServer:
    """The loopback DNS server serving ``zone_records(key)`` of the requesting test module."""
    dns_server.zone = Zone(request.module.zone_records(key))
    return dns_server
