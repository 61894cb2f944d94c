"""Shared test fixtures."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsTestServer
from tests.support.paths import CORPUS_ARCHIVE
from tests.support.redisserver import RedisTestServer, free_loopback_port


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SpamAssassin public corpus unpacked into a temporary folder (never committed)."""
    if not CORPUS_ARCHIVE.exists():
        pytest.fail(f"corpus archive not found at {CORPUS_ARCHIVE} (set MILTERFILTERS_SHARED)")
    target = tmp_path_factory.mktemp("corpus")
    with tarfile.open(CORPUS_ARCHIVE) as tar:
        tar.extractall(target, filter="data")
    yield target / "spamassassin"


@pytest.fixture
def dns_server() -> Iterator[DnsTestServer]:
    """A real DNS server (UDP and TCP) on a free loopback port, with an empty zone.

    Give it data with ``dns_server.zone = Zone({...})``; point a resolver (or
    ``[dns] nameservers``) at ``dns_server.address``.
    """
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisTestServer]:
    """A real redis-server for the whole session; tests keep apart by their own key prefixes."""
    server = RedisTestServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisTestServer]]:
    """Start private redis-servers (stopped at the end of the test), e.g. to take one down."""
    servers: list[RedisTestServer] = []

    def start() -> RedisTestServer:
        servers.append(RedisTestServer(tmp_path / f"redis{len(servers)}"))
        return servers[-1].start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port with nothing listening (a server that is down)."""
    return free_loopback_port()
