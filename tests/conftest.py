"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsserver import DnsTestServer


@pytest.fixture
def dns_server() -> Iterator[DnsTestServer]:
    """A real DNS server (UDP and TCP) on a free loopback port, with an empty zone.

    Give it data with ``dns_server.zone = Zone({...})``; point a resolver (or
    ``[dns] nameservers``) at ``dns_server.address``.
    """
    with DnsTestServer() as server:
        yield server
