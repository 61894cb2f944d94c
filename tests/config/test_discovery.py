"""Where the configuration comes from, and what the embedded default runs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import milterfilters
from milterfilters.config import load_config
from milterfilters.config.discovery import CONFIG_ENV, find_config
from milterfilters.core.verdict import Action
from tests.support.defaultconfig import default_config


def test_option_wins_then_variable_then_system_file_then_embedded(tmp_path: Path) -> None:
    system = tmp_path / "milterfilters.toml"
    env = {CONFIG_ENV: "/from/env.toml"}
    assert find_config("/from/option.toml", env, system).path == "/from/option.toml"
    assert find_config(None, env, system).path == "/from/env.toml"
    assert find_config(None, {}, system).path is None  # the system file does not exist
    system.write_text("")
    assert find_config(None, {}, system).path == str(system)
    assert find_config(None, {CONFIG_ENV: ""}, system).path == str(system)  # empty: unset


def test_the_origin_names_the_file_and_why(tmp_path: Path) -> None:
    origin = find_config(None, {}, tmp_path / "absent.toml")
    assert origin.describe().startswith("<embedded default> (no --config, no $MILTERFILTERS_CONFIG")
    assert (
        find_config(None, {CONFIG_ENV: "/x.toml"}, tmp_path).describe()
        == "/x.toml (from $MILTERFILTERS_CONFIG)"
    )


def test_the_embedded_default_authenticates_and_only_scores() -> None:
    config = load_config(None)
    enabled = [spec.name for spec in config.enabled_filters]
    for name in ("relay", "spf", "authres_forgery", "dkim", "dmarc", "gtube", "size", "classifier"):
        assert name in enabled
    assert config.dns.nameservers == ()  # the system resolver
    spf, dmarc = config.filter("spf").options, config.filter("dmarc").options
    assert spf.check_helo and spf.fail == "score" and spf.temperror == "score"
    assert (dmarc.reject_policy_action, dmarc.quarantine_policy_action, dmarc.unusable_from) == (
        "score",
        "score",
        "score",
    )


def test_a_configuration_file_keeps_the_option_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[gtube]\nenabled = true\n")
    config = load_config(path)
    assert not config.filter("spf").settings.enabled
    assert config.filter("dmarc").options.reject_policy_action == "reject"


def test_the_default_chain_writes_authentication_results(dns_server: object) -> None:
    chain = milterfilters.build_chain(default_config([dns_server.address]))  # type: ignore[attr-defined]
    out = milterfilters.evaluate(
        chain,
        b"From: a@example.org\nSubject: hi\n\nhello\n",
        client_ip="203.0.113.5",
        helo="mail.example.org",
        mail_from="a@example.org",
        recipients=["b@example.net"],
    )
    names = [h.name for h in out.decision.added_headers]
    assert "Authentication-Results" in names
    results = dict(h for h in ((h.name, h.value) for h in out.decision.added_headers))
    assert "spf=none" in results["Authentication-Results"]
    assert "dmarc=none" in results["Authentication-Results"]


@pytest.fixture
def silent_udp_port() -> Iterator[str]:
    """A loopback UDP port that takes queries and never answers (a resolver that hangs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_the_default_chain_decides_within_its_dns_budget_when_the_resolver_hangs(
    silent_udp_port: str,
) -> None:
    timeout = 1.0
    chain = milterfilters.build_chain(default_config([silent_udp_port], timeout=timeout))
    message = (
        b"From: a@example.org\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; h=from; "
        b"bh=AAAA; b=AAAA\nSubject: hi\n\nhello\n"
    )
    start = time.monotonic()
    out = milterfilters.evaluate(
        chain, message, client_ip="203.0.113.5", helo="mail.example.org", recipients=["b@example.net"]
    )
    elapsed = time.monotonic() - start
    assert out.action in (Action.ACCEPT, Action.TEMPFAIL)
    # SPF (MAIL FROM, HELO), DKIM and DMARC each stop at their own budget of `timeout`;
    # a generous bound, no tighter than each of them spending it twice over
    assert elapsed < 4 * 2 * timeout + 5
