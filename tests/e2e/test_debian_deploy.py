"""The deployment examples on a real MTA, as Debian runs it: Postfix with its services chrooted
(Debian's stock master.cf, chroot populated by Debian's configure-instance.sh) and its milter
lines read from examples/postfix/main.cf, the milter's socket exactly where the example puts it
(inside the queue directory, group postfix, mode 0660); Sendmail with its milter lines read from
examples/sendmail/milterfilters.mc, the socket at the example's path under /run."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import dkim
import pytest
import tomli_w

from milterfilters.auth.dkim_keys import PrivateKey
from tests.support.dnsserver import DnsTestServer

from .conftest import AUTHSERV_ID, PARTNER_IP
from .deploy_examples import postfix_queue_socket, postfix_settings, sendmail_milter_lines, sendmail_socket
from .mta import MailStack, StackPool, make_message
from .postfix import debian_chroot_column

pytestmark = pytest.mark.e2e



def auth_config(partner_dns: DnsTestServer) -> str:
    """SPF, DKIM and DMARC on, DNS on loopback, the socket settings of examples/milterfilters.toml."""
    milter = {"authserv_id": AUTHSERV_ID, "socket_mode": "0660", "socket_group": "postfix"}
    filters = {name: {"enabled": True} for name in ("spf", "dkim", "dmarc")}
    dns = {"nameservers": [partner_dns.address], "timeout": 2.0}
    return tomli_w.dumps({"milter": milter, "dns": dns, **filters})


@pytest.fixture(scope="module")
def chrooted(stack_pool: StackPool, partner_dns: DnsTestServer) -> MailStack:
    settings = postfix_settings()
    return stack_pool.postfix(
        auth_config(partner_dns), main_cf=settings, chroot=True, queue_socket=postfix_queue_socket(settings)
    )


def send_signed(stack: MailStack, partner_key: PrivateKey, subject: str) -> tuple[str, str]:
    message = make_message(subject, sender="news@partner.example", to="user@test.example")
    signed = dkim.sign(
        message, b"s1", b"partner.example", partner_key.dkimpy_key, signature_algorithm=b"ed25519-sha256"
    )
    sent = stack.send(subject, message=signed + message, mail_from="bounce@partner.example",
                      xclient={"ADDR": PARTNER_IP, "NAME": "mail.partner.example"})  # fmt: skip
    assert sent.transcript.accepted, sent.transcript.describe()
    results = [r.strip() for r in sent.delivered().get_all("Authentication-Results", [])]
    ours = [r for r in results if r.startswith(AUTHSERV_ID)]
    assert len(ours) == 1, results
    return sent.transcript.queue_id or "", " ".join(ours[0].split())


def test_chrooted_postfix_reaches_the_socket_where_the_example_puts_it(
    chrooted: MailStack, partner_key: PrivateKey
) -> None:
    postfix = chrooted.mta
    # the stack really is Debian's: smtpd and cleanup chrooted, the example's milter lines in main.cf
    master_cf = (postfix.config_dir / "master.cf").read_text().splitlines()
    smtpd = next(line.split() for line in master_cf if line.split()[1] == "inet")
    cleanup = next(line.split() for line in master_cf if line.startswith("cleanup "))
    assert smtpd[4] == cleanup[4] == debian_chroot_column()[("smtp", "inet")] == "y"
    assert (postfix.base / "spool" / "etc" / "services").exists()  # configure-instance.sh ran
    main_cf = (postfix.config_dir / "main.cf").read_text()
    for name, value in postfix_settings().items():
        assert f"\n{name} = {value}\n" in main_cf
    socket_path = chrooted.milter.socket_path
    assert socket_path == postfix.base / "spool" / "milterfilters" / "milter.sock"
    mode = socket_path.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o660
    assert socket_path.group() == socket_path.parent.group() == "postfix"

    queue_id, results = send_signed(chrooted, partner_key, "chrooted smtpd")
    assert re.search(r"dkim=pass [^;]*header\.d=partner\.example", results), results
    assert "spf=pass smtp.mailfrom=bounce@partner.example" in results
    assert re.search(r"dmarc=pass [^;]*header\.from=partner\.example", results), results
    decision = chrooted.milter.wait_for_decision(mail_from="bounce@partner.example", queue_id=queue_id)
    assert decision["action"] == "accept"
    assert "connect to Milter service" not in postfix.log_text()


def test_an_absolute_socket_path_fails_under_the_chroot_and_mail_is_tempfailed(
    stack_pool: StackPool, partner_dns: DnsTestServer
) -> None:
    """The README's former line: Postfix looks the absolute path up inside its chroot."""
    settings = postfix_settings()
    queue_socket = postfix_queue_socket(settings)
    stack = stack_pool.postfix(
        auth_config(partner_dns), main_cf=settings, chroot=True, queue_socket=queue_socket, private=True
    )
    absolute = f"unix:{stack.mta.base / 'spool' / queue_socket}"
    stack.mta.stop()
    stack.mta.settings["smtpd_milters"] = absolute
    stack.mta.start()
    sent = stack.send("absolute path")
    final = sent.transcript.final
    assert final is not None and final.code == 451, sent.transcript.describe()
    assert "No such file or directory" in stack.mta.log_text()


@pytest.fixture(scope="module")
def sendmail_from_example(stack_pool: StackPool, partner_dns: DnsTestServer) -> MailStack:
    return stack_pool.sendmail(auth_config(partner_dns), milter_mc=sendmail_milter_lines())


def test_sendmail_with_the_example_lines_passes_mail_through_the_milter(
    sendmail_from_example: MailStack,
) -> None:
    stack = sendmail_from_example
    lines = sendmail_milter_lines()
    mc = (Path(stack.mta.base) / "sendmail.mc").read_text()
    assert all(line in mc.splitlines() for line in lines)
    assert "INPUT_MAIL_FILTER" not in mc.replace(lines[0], "")  # no other filter
    # the socket is at the example's path inside Sendmail's namespace
    assert stack.milter.socket_path.name == sendmail_socket(lines).name
    sent = stack.send("sendmail example", source_address="127.0.0.9")
    assert sent.transcript.accepted, sent.transcript.describe()
    decision = sent.decision()
    assert decision["client"] == "unknown[127.0.0.9]" or decision["client"].endswith("[127.0.0.9]")
    assert sent.delivered()["X-Milterfilters-Score"] is not None
