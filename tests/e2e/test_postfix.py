"""The milter behind a real Postfix: delivery, reject, tag, tempfail when absent, SMTP facts."""

from __future__ import annotations

import os
import signal
import smtplib

import pytest

from . import scenarios
from .conftest import StackFactory
from .mta import GTUBE, LOOPBACK, MailStack, make_message, unique_token, wait_until
from .smtp import dot_stuffed

pytestmark = pytest.mark.e2e

XCLIENT = {
    "ADDR": "203.0.113.7",
    "NAME": "mail.client.example",
    "HELO": "helo.client.example",
    "LOGIN": "alice@test.example",
}


def test_crashed_worker_tempfails_until_the_supervisor_restarts_it(postfix_with_milter: StackFactory) -> None:
    stack = postfix_with_milter(private=True)
    supervisor = stack.milter.pid
    assert supervisor is not None
    (worker,) = stack.milter.worker_pids()
    os.kill(supervisor, signal.SIGSTOP)  # hold the restart, so the mail surely meets the crash
    try:
        os.kill(worker, signal.SIGKILL)
        sent = scenarios.tempfails_and_keeps_nothing(stack, "worker crashed")
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_until(lambda: stack.milter.worker_pids() not in ([], [worker]), 15, "a new worker")
    wait_until(lambda: stack.milter.listening, 15, "the new worker's socket")
    scenarios.resent_mail_is_delivered(sent)


def test_sighup_reload_applies_to_new_sessions_and_keeps_open_ones(postfix_with_milter: StackFactory) -> None:
    stack = postfix_with_milter(private=True)
    (worker,) = stack.milter.worker_pids()
    sender = f"sender-{unique_token()}@client.example"
    with smtplib.SMTP(LOOPBACK, stack.mta.port, timeout=30) as session:  # open across the reload
        session.ehlo("client.example")
        assert session.mail(sender)[0] == 250
        assert session.rcpt("user@test.example")[0] == 250
        stack.milter.reload(scenarios.TAG_CONFIG)
        assert session.docmd("DATA")[0] == 354
        session.send(dot_stuffed(make_message("in flight", body=GTUBE, sender=sender)))
        code, text = session.getreply()
    # the open session finished on the configuration it started with (GTUBE rejects)
    assert (code, text[:5]) == (554, b"5.7.1")
    scenarios.tag_decision_delivers_with_spam_headers(stack)  # new sessions see the new one
    assert stack.milter.worker_pids() == [worker]  # reloaded, not restarted
    assert stack.milter.stop() == 0  # SIGTERM: a clean stop


def test_xclient_client_address_and_login_reach_the_milter(postfix_stack: MailStack) -> None:
    sent = postfix_stack.send("xclient", xclient=XCLIENT, rcpt_to=["bob@far.example"])
    assert sent.transcript.xclient is not None and sent.transcript.xclient.code == 220
    assert sent.transcript.accepted, sent.transcript.describe()  # relaying: the login is authenticated
    decision = sent.decision()
    assert decision["client"] == "mail.client.example[203.0.113.7]"
    assert decision["helo"] == "helo.client.example"
    assert decision["auth"] == "alice@test.example"
    sent.delivered()


def test_sasl_auth_plain_login_reaches_the_milter(postfix_stack: MailStack) -> None:
    scenarios.sasl_login_and_client_address_reach_the_milter(
        postfix_stack, xclient={"ADDR": "203.0.113.8"}, client="unknown[203.0.113.8]"
    )


def test_each_recipient_gets_its_own_rcpt_reply(postfix_stack: MailStack) -> None:
    # an unauthenticated outside client may send to the local domain but not relay
    sent = postfix_stack.send(
        "two recipients", xclient={"ADDR": "198.51.100.9"}, rcpt_to=["user@test.example", "bob@far.example"]
    )
    t = sent.transcript
    assert t.rcpt["user@test.example"].code == 250
    assert t.rcpt["bob@far.example"].code == 554 and "Relay access denied" in t.rcpt["bob@far.example"].text
    assert t.accepted, t.describe()
    assert sent.decision()["rcpt"] == "user@test.example"


def test_relay_all_leaves_relaying_to_the_milter(postfix_with_milter: StackFactory) -> None:
    stack = postfix_with_milter(relay_all=True)
    sent = stack.send("relay", xclient={"ADDR": "198.51.100.9"}, rcpt_to=["bob@far.example"])
    reply = sent.transcript.rcpt["bob@far.example"]
    # Postfix no longer refuses by itself: either the milter accepted, or it refused and logged why
    if reply.positive:
        assert sent.transcript.accepted, sent.transcript.describe()
    else:
        assert sent.decision(stage="rcpt")["action"] in ("reject", "tempfail")
