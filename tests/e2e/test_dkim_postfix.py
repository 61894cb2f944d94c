"""SPF, DKIM, DMARC and Authentication-Results through a real Postfix, keys and policies in
the loopback DNS: mail from an authenticated client leaves signed; a signed message arrives
with dkim=pass and dmarc=pass; a spoofed From under p=reject is refused at end of data; forged
Authentication-Results fields with our authserv-id are gone on delivery, ours stays."""

from __future__ import annotations

import dkim
import pytest

from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from tests.support.dnsserver import DnsTestServer, Zone

from .mta import MailStack, make_message

pytestmark = pytest.mark.e2e

AUTHSERV_ID = "mx.test.example"


@pytest.fixture(scope="module")
def signer_key() -> PrivateKey:
    return generate_key("ed25519")[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """Our outbound signing key: (key file, selector, public record)."""
    folder = tmp_path_factory.mktemp("dkim-keys")
    pem, key = generate_key("rsa", 2048)
    path = folder / "out.key"
    path.write_bytes(pem)
    path.chmod(0o600)
    return str(path), "out2026", key.public_record


@pytest.fixture(scope="module")
def dns(signer_key: PrivateKey, keys: tuple[str, str, str]):  # type: ignore[no-untyped-def]
    _, selector, record = keys
    zone = Zone(
        {
            "s1._domainkey.partner.example": [("TXT", signer_key.public_record)],
            "_dmarc.partner.example": [("TXT", "v=DMARC1; p=reject")],
            "partner.example": [("TXT", "v=spf1 ip4:203.0.113.50 -all")],
            "_dmarc.bank.example": [("TXT", "v=DMARC1; p=reject")],
            f"{selector}._domainkey.test.example": [("TXT", record)],
        }
    )
    with DnsTestServer(zone) as server:
        yield server


@pytest.fixture(scope="module")
def stack(stack_pool, dns: DnsTestServer, keys: tuple[str, str, str]) -> MailStack:  # type: ignore[no-untyped-def]
    key_file, selector, _ = keys
    config = f"""
[milter]
authserv_id = "{AUTHSERV_ID}"
[dns]
nameservers = ["{dns.address}"]
timeout = 2.0
[spf]
enabled = true
[dkim]
enabled = true
[dmarc]
enabled = true
[dkim_sign]
enabled = true
[[dkim_sign.keys]]
domain = "test.example"
selector = "{selector}"
key_file = "{key_file}"
algorithm = "rsa-sha256"
"""
    return stack_pool.postfix(config, relay_all=True)  # type: ignore[no-any-return]


def verify_delivered(dns: DnsTestServer, raw: bytes) -> bool:
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        zone_name = name.decode().rstrip(".")
        answer = dns.zone.lookup(zone_name, "TXT")
        return b"".join(answer.answer[0].rdata.data) if answer and answer.answer else None

    return bool(dkim.verify(raw, dnsfunc=lookup))


def test_authenticated_client_mail_leaves_signed(stack: MailStack, dns: DnsTestServer, keys) -> None:  # type: ignore[no-untyped-def]
    sent = stack.send(
        "signed on the way out",
        mail_from="alice@test.example",  # also the From
        rcpt_to=["bob@far.example"],
        auth=("alice@test.example", "secret"),
    )
    assert sent.transcript.accepted, sent.transcript.describe()
    delivered = sent.delivered()
    signature = delivered["DKIM-Signature"]
    assert signature and "d=test.example" in signature and f"s={keys[1]}" in signature
    # the delivered copy (with Postfix's own Received and our fields) still verifies
    assert verify_delivered(dns, delivered.as_bytes().replace(b"\n", b"\r\n"))


def test_signed_message_arrives_with_dkim_and_dmarc_pass(stack: MailStack, signer_key: PrivateKey) -> None:
    message = make_message("partner news", sender="news@partner.example", to="user@test.example")
    signed = dkim.sign(
        message, b"s1", b"partner.example", signer_key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
    )
    sent = stack.send("partner news", message=signed + message, mail_from="bounce@partner.example",
                      xclient={"ADDR": "203.0.113.50", "NAME": "mail.partner.example"})  # fmt: skip
    assert sent.transcript.accepted, sent.transcript.describe()
    delivered = sent.delivered()
    results = delivered.get_all("Authentication-Results")
    ours = [r for r in results if r.strip().startswith(AUTHSERV_ID)]
    assert len(ours) == 1, results
    assert "dkim=pass" in ours[0] and "header.d=partner.example" in ours[0]
    assert "dmarc=pass" in ours[0] and "header.from=partner.example" in ours[0]
    assert "spf=pass smtp.mailfrom=bounce@partner.example" in ours[0]
    # at the top of the header block: above the Received field Postfix added for this hop
    names = [name.lower() for name in delivered.keys()]
    assert names.index("authentication-results") < names.index("received"), names


def test_spoofed_from_under_p_reject_is_refused_at_end_of_data(stack: MailStack) -> None:
    message = make_message(
        "urgent: verify your account", sender="security@bank.example", to="user@test.example"
    )
    sent = stack.send("urgent: verify your account", message=message, mail_from="x@spoofer.example",
                      xclient={"ADDR": "203.0.113.66", "NAME": "mail.spoofer.example"})  # fmt: skip
    assert sent.transcript.eom is not None and sent.transcript.eom.code == 550, sent.transcript.describe()
    assert "5.7.1" in sent.transcript.eom.text and "DMARC" in sent.transcript.eom.text
    sent.assert_not_delivered()


def test_forged_authentication_results_are_gone_and_ours_stays(stack: MailStack) -> None:
    message = make_message("forged results", sender="news@partner.example", to="user@test.example")
    forged = (
        f"Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d=bank.example\r\n"
        "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\r\n"
        f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from=bank.example\r\n"
    ).encode()
    sent = stack.send("forged results", message=forged + message, mail_from="bounce@partner.example",
                      xclient={"ADDR": "203.0.113.50", "NAME": "mail.partner.example"})  # fmt: skip
    assert sent.transcript.accepted, sent.transcript.describe()
    results = [r.strip() for r in sent.delivered().get_all("Authentication-Results")]
    ours = [r for r in results if r.startswith(AUTHSERV_ID)]
    assert len(ours) == 1 and "bank.example" not in ours[0], results
    assert "spf=pass" in ours[0] and "dmarc=pass" in ours[0]  # unsigned, but SPF aligns
    assert any(r.startswith("other.example") for r in results)


def test_sendmail_also_loses_only_the_forged_fields(sendmail_with_milter, dns: DnsTestServer) -> None:  # type: ignore[no-untyped-def]
    config = f"""
[milter]
authserv_id = "{AUTHSERV_ID}"
[dns]
nameservers = ["{dns.address}"]
[dkim]
enabled = true
check_outbound = true  # Sendmail's client is 127.0.0.1, a trusted network
"""
    stack = sendmail_with_milter(config)
    message = make_message(
        "forged results via sendmail", sender="news@partner.example", to="user@test.example"
    )
    forged = (
        f"Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d=bank.example\r\n"
        "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\r\n"
        f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from=bank.example\r\n"
    ).encode()
    sent = stack.send(
        "forged results via sendmail", message=forged + message, mail_from="bounce@partner.example"
    )
    assert sent.transcript.accepted, sent.transcript.describe()
    results = [r.strip() for r in sent.delivered().get_all("Authentication-Results")]
    ours = [r for r in results if r.startswith(AUTHSERV_ID)]
    assert len(ours) == 1 and "bank.example" not in ours[0] and "dkim=none" in ours[0], results
    assert any(r.startswith("other.example") for r in results)
