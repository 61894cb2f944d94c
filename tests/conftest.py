"""Shared test fixtures."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dnsserver import DnsTestServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MILTERFILTERS_SHARED", PROJECT_ROOT.parent / "shared"))
CORPUS_ARCHIVE = SHARED / "corpora" / "spamassassin.tar.xz"


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
