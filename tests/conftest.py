"""Shared test fixtures."""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.resolver
import pytest

from milterfilters.config.discovery import CONFIG_ENV
from tests.support.defaultconfig import write_default_config
from tests.support.dnsserver import DnsTestServer
from tests.support.paths import CORPUS_ARCHIVE
from tests.support.redisserver import RedisTestServer, free_loopback_port


def pytest_configure(config: pytest.Config) -> None:
    """No test reaches the system resolver (the embedded default's): commands started without
    ``--config`` find, through ``$MILTERFILTERS_CONFIG``, the embedded default with
    ``[dns] nameservers`` on a dead loopback port; and in this process, reading
    ``/etc/resolv.conf`` fails, so a chain built on the system resolver gets temperrors (and
    ``config --check`` refuses it) instead of sending queries out."""
    folder = Path(tempfile.mkdtemp(prefix="milterfilters-tests-"))
    os.environ[CONFIG_ENV] = str(write_default_config(folder / "default-loopback-dns.toml"))

    def no_system_resolver(self: dns.resolver.Resolver, *args: object, **kwargs: object) -> None:
        raise dns.resolver.NoResolverConfiguration("tests never use the system resolver")

    dns.resolver.Resolver.read_resolv_conf = no_system_resolver  # type: ignore[method-assign]


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
