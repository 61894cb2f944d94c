"""Fixtures for end-to-end tests with real MTAs (see README.md in this folder).

``postfix_with_milter(config_toml, relay_all=..., main_cf=..., private=..., start_milter=...)``
and ``sendmail_with_milter(config_toml, ...)`` return a running :class:`.mta.MailStack`;
``postfix_stack`` / ``sendmail_stack`` are the same with the embedded default configuration.
Stacks with equal arguments are started once per session and shared; every daemon is stopped by
PID when the session ends, pass or fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from tests.support.dnsserver import DnsTestServer, Zone

from .mta import MailStack, StackPool, make_runtime_dir

StackFactory = Callable[..., MailStack]
#: commands the fixtures run (scripts/install-test-deps.sh installs them)
REQUIRED_TOOLS = ("postfix", "postconf", "saslpasswd2", "m4", "unshare", "mount", "dpkg-deb")


@pytest.fixture(scope="session")
def e2e_runtime_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A 0755 folder under /tmp for the session's daemons; kept when a test failed (or with
    MILTERFILTERS_E2E_KEEP=1) so their logs can be read."""
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests run Postfix and Sendmail and must run as root")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-test-deps.sh (as root)")
    path = make_runtime_dir()
    yield path
    if request.session.testsfailed or os.environ.get("MILTERFILTERS_E2E_KEEP"):
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"end-to-end runtime folder (logs) kept: {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_pool(e2e_runtime_dir: Path) -> Iterator[StackPool]:
    """Starts and shares milter + MTA stacks; stops them all at the end of the session."""
    pool = StackPool(e2e_runtime_dir)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def postfix_with_milter(stack_pool: StackPool) -> StackFactory:
    """Factory: ``postfix_with_milter(config_toml="", *, relay_all=False, main_cf=None,
    transport="unix", private=False, start_milter=True) -> MailStack``."""
    return stack_pool.postfix


@pytest.fixture
def sendmail_with_milter(stack_pool: StackPool) -> StackFactory:
    """Factory: ``sendmail_with_milter(config_toml="", *, transport="unix", private=False,
    start_milter=True) -> MailStack``."""
    return stack_pool.sendmail


@pytest.fixture
def postfix_stack(stack_pool: StackPool) -> MailStack:
    """The shared Postfix + milter with the embedded default configuration."""
    return stack_pool.postfix()


@pytest.fixture
def sendmail_stack(stack_pool: StackPool) -> MailStack:
    """The shared Sendmail + milter with the embedded default configuration."""
    return stack_pool.sendmail()


#: the authserv-id the deployment tests give the milter, and the partner's sending address
AUTHSERV_ID = "mx.test.example"
PARTNER_IP = "203.0.113.50"


@pytest.fixture(scope="module")
def partner_key() -> PrivateKey:
    """The Ed25519 key partner.example signs with (published by :func:`partner_dns`)."""
    return generate_key("ed25519")[1]


@pytest.fixture(scope="module")
def partner_dns(partner_key: PrivateKey) -> Iterator[DnsTestServer]:
    """A loopback DNS server for partner.example: SPF for PARTNER_IP, its DKIM key, p=reject."""
    zone = Zone(
        {
            "s1._domainkey.partner.example": [("TXT", partner_key.public_record)],
            "_dmarc.partner.example": [("TXT", "v=DMARC1; p=reject")],
            "partner.example": [("TXT", f"v=spf1 ip4:{PARTNER_IP} -all")],
        }
    )
    with DnsTestServer(zone) as server:
        yield server
