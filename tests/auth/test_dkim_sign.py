"""Outbound DKIM signing: who is signed, with which keys (RSA and Ed25519 dual signing), what
the signature covers, key files checked at start-up, and ``milterfilters dkim-keygen``. Each
signature is verified by the dkim filter against the public key served by the loopback DNS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from milterfilters.api import evaluate
from milterfilters.auth.dkim_keys import generate_key
from milterfilters.core.schema import ConfigError
from milterfilters.core.verdict import HeaderAdd, HeaderPosition
from milterfilters.mail.message import parse_message
from tests.support.dnsserver import DnsTestServer, Zone
from tests.support.mailauth import auth_chain

MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@remote.example\r\nSubject: report\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <2@example.com>\r\n\r\nThe report.\r\n"
)


def write_key(directory: Path, name: str, key_type: str, mode: int = 0o600) -> tuple[Path, str]:
    pem, key = generate_key(key_type)  # type: ignore[arg-type]
    path = directory / name
    path.write_bytes(pem)
    path.chmod(mode)
    return path, key.public_record


@pytest.fixture
def keys(tmp_path: Path, dns_server: DnsTestServer) -> list[dict[str, str]]:
    rsa_path, rsa_record = write_key(tmp_path, "rsa.key", "rsa")
    ed_path, ed_record = write_key(tmp_path, "ed.key", "ed25519")
    dns_server.zone = Zone(
        {
            "r1._domainkey.example.com": [("TXT", rsa_record)],
            "e1._domainkey.example.com": [("TXT", ed_record)],
        }
    )
    return [
        {"domain": "example.com", "selector": "r1", "key_file": str(rsa_path), "algorithm": "rsa-sha256"},
        {"domain": "example.com", "selector": "e1", "key_file": str(ed_path), "algorithm": "ed25519-sha256"},
    ]


def sign(dns: DnsTestServer, keys: list[dict[str, str]], message: bytes = MESSAGE, **transaction: object):  # type: ignore[no-untyped-def]
    chain = auth_chain(dns, {"dkim_sign": {"keys": keys, "trusted_networks": ["198.51.100.0/24"]}})
    transaction.setdefault("client_ip", "203.0.113.9")
    outcome = evaluate(chain, message, recipients=["bob@remote.example"], **transaction)  # type: ignore[arg-type]
    return [h for h in outcome.decision.headers if isinstance(h, HeaderAdd) and h.name == "DKIM-Signature"]


def delivered(signatures: list[HeaderAdd], message: bytes = MESSAGE) -> bytes:
    """The message as the MTA delivers it: the signatures added on top."""
    fields = b"".join(
        f"DKIM-Signature: {s.value}".replace("\n", "\r\n").encode() + b"\r\n" for s in signatures
    )
    return fields + message


def verify(dns: DnsTestServer, message: bytes) -> list[str]:
    chain = auth_chain(dns, {"dkim": {"arc": False}})
    outcome = evaluate(chain, message, client_ip="192.0.2.1", recipients=["bob@remote.example"])
    return [f"{f.finding.symbol} {f.finding.detail}" for f in outcome.decision.findings]


def test_authenticated_client_gets_dual_signatures_that_verify(dns_server: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    signatures = sign(dns_server, keys, auth_user="alice")
    assert len(signatures) == 2 and all(s.position is HeaderPosition.TOP for s in signatures)
    assert "a=rsa-sha256" in signatures[0].value and "a=ed25519-sha256" in signatures[1].value
    for s in signatures:
        assert "c=relaxed/relaxed" in s.value and "d=example.com" in s.value
    assert sorted(verify(dns_server, delivered(signatures))) == [
        "DKIM_PASS d=example.com s=e1 a=ed25519-sha256",
        "DKIM_PASS d=example.com s=r1 a=rsa-sha256",
    ]


def test_from_is_oversigned_and_changes_break_the_signature(dns_server: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    signatures = sign(dns_server, keys[:1], auth_user="alice")
    tags = dict(t.strip().split("=", 1) for t in signatures[0].value.replace("\n", "").split(";") if "=" in t)
    signed_fields = [h.strip() for h in tags["h"].split(":")]
    assert signed_fields.count("from") == 2  # one more than the message has
    assert {"to", "subject", "date", "message-id"} <= set(signed_fields)
    message = delivered(signatures)
    added_from = message.replace(b"\r\n\r\nThe", b"\r\nFrom: boss@example.com\r\n\r\nThe")
    assert verify(dns_server, added_from)[0].startswith("DKIM_FAIL")
    assert verify(dns_server, message.replace(b"The report", b"The invoice"))[0].startswith("DKIM_FAIL")
    # relaxed/relaxed: refolding and whitespace changes on the way do not matter
    assert verify(dns_server, message.replace(b"Subject: report", b"Subject:   report"))[0].startswith(
        "DKIM_PASS"
    )


def test_who_is_signed(dns_server: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    assert len(sign(dns_server, keys, client_ip="198.51.100.7")) == 2  # trusted network
    assert sign(dns_server, keys) == []  # neither authenticated nor trusted
    other = MESSAGE.replace(b"alice@example.com", b"alice@elsewhere.example")
    assert sign(dns_server, keys, other, auth_user="alice") == []  # no key for the author domain
    sub = MESSAGE.replace(b"alice@example.com", b"alice@news.example.com")
    signatures = sign(dns_server, keys, sub, auth_user="alice")
    assert len(signatures) == 2 and "d=example.com" in signatures[0].value  # parent domain's key


def test_trusted_networks_default_to_the_relay_filters(dns_server: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    def signs(client_ip: str, relay: dict[str, object], own: list[str]) -> bool:
        chain = auth_chain(dns_server, {"relay": relay, "dkim_sign": {"keys": keys, "trusted_networks": own}})
        outcome = evaluate(chain, MESSAGE, client_ip=client_ip, mail_from="alice@example.com",
                           recipients=["bob@remote.example"])  # fmt: skip
        return any(isinstance(h, HeaderAdd) and h.name == "DKIM-Signature" for h in outcome.decision.headers)

    relay = {"trusted_networks": ["10.1.0.0/16"]}
    assert signs("10.1.2.3", relay, own=[])  # listed once, in [relay]
    assert not signs("10.1.2.3", relay, own=["192.0.2.0/24"])  # an own list replaces it
    assert signs("192.0.2.7", relay, own=["192.0.2.0/24"])
    assert not signs("10.1.2.3", {**relay, "enabled": False}, own=[])


@pytest.mark.parametrize(
    ("problem", "message"),
    [("world-readable", "readable by everyone"), ("missing", "cannot read key file"),
     ("wrong-algorithm", "holds an ed25519 key, but the algorithm is rsa-sha256"),
     ("garbage", "neither a PEM private key")],
)  # fmt: skip
def test_key_files_are_checked_at_start_up(
    tmp_path: Path, dns_server: DnsTestServer, problem: str, message: str
) -> None:
    path, _ = write_key(tmp_path, "k.key", "ed25519" if problem == "wrong-algorithm" else "rsa")
    if problem == "world-readable":
        path.chmod(0o644)
    elif problem == "missing":
        path.unlink()
    elif problem == "garbage":
        path.write_bytes(b"not a key\n")
    entry = {"domain": "example.com", "selector": "s", "key_file": str(path), "algorithm": "rsa-sha256"}
    with pytest.raises(ConfigError, match=message) as e:
        auth_chain(dns_server, {"dkim_sign": {"keys": [entry]}})
    assert e.value.key == "dkim_sign.keys[0]"


def test_signed_header_list_is_validated(dns_server: DnsTestServer) -> None:
    with pytest.raises(ConfigError, match="must include from"):
        auth_chain(dns_server, {"dkim_sign": {"headers": ["subject"]}})
    with pytest.raises(ConfigError, match="received"):
        auth_chain(dns_server, {"dkim_sign": {"headers": ["from", "received"]}})


def test_too_large_message_is_not_signed(dns_server: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    message = parse_message(MESSAGE, max_body_bytes=4)
    chain = auth_chain(dns_server, {"dkim_sign": {"keys": keys}})
    outcome = evaluate(chain, message, auth_user="alice", recipients=["bob@remote.example"])
    assert [f.finding.symbol for f in outcome.decision.findings] == ["DKIM_SIGN_SKIPPED"]


def test_keygen_writes_a_private_key_and_prints_the_record_to_publish(
    tmp_path: Path, dns_server: DnsTestServer
) -> None:
    for algorithm, selector in (("ed25519", "e2026"), ("rsa", "r2026")):
        r = subprocess.run(
            [sys.executable, "-m", "milterfilters.cli", "dkim-keygen", "example.com", selector,
             "--algorithm", algorithm, "--out", str(tmp_path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        key_file = tmp_path / f"example.com.{selector}.{algorithm}.key"
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        record_line = r.stdout.strip().splitlines()[-1]
        assert record_line.startswith(f"{selector}._domainkey.example.com. IN TXT (")
        assert (tmp_path / f"example.com.{selector}.{algorithm}.txt").read_text().strip() == record_line
        # publish what was printed; mail signed with the key verifies against it
        dns_server.zone = Zone.from_text(record_line)
        entry = {"domain": "example.com", "selector": selector, "key_file": str(key_file),
                 "algorithm": f"{algorithm}-sha256"}  # fmt: skip
        signatures = sign(dns_server, [entry], auth_user="alice")
        assert verify(dns_server, delivered(signatures)) == [
            f"DKIM_PASS d=example.com s={selector} a={algorithm}-sha256"
        ]
    again = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "dkim-keygen", "example.com", "e2026",
         "--algorithm", "ed25519", "--out", str(tmp_path)], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 2 and "not overwriting" in again.stderr


def test_relative_key_paths_are_taken_from_the_configuration_folder(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from milterfilters.api import build_chain

    (tmp_path / "keys").mkdir()
    write_key(tmp_path / "keys", "ed.key", "ed25519")
    config = tmp_path / "milterfilters.toml"
    config.write_text(
        '[dkim_sign]\nenabled = true\nkeys = [{ domain = "example.com", selector = "e1", '
        'key_file = "keys/ed.key", algorithm = "ed25519-sha256" }]\n'
    )
    monkeypatch.chdir("/")
    chain = build_chain(config)
    outcome = evaluate(chain, MESSAGE, auth_user="alice", recipients=["bob@remote.example"])
    assert [f.finding.symbol for f in outcome.decision.findings] == ["DKIM_SIGNED"]
