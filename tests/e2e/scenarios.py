"""End-to-end checks that hold behind any MTA; test_postfix.py and test_sendmail.py run them.

Each takes a running :class:`~.mta.MailStack` (or one whose milter is not started, where
said) and asserts on what the SMTP client, the mailbox and the milter's decision log show.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from .mta import GTUBE, MailStack, Submission

#: GTUBE weighs more than the tag threshold (6) and less than the reject threshold (15)
TAG_CONFIG = "[scores]\nGTUBE = 7.0\n"
LOGIN, PASSWORD = "alice@test.example", "secret"


def plain_mail_is_delivered_with_status_headers(stack: MailStack) -> None:
    body = "Hello.\r\n.a line that starts with a dot\r\n..and one with two\r\n"
    sent = stack.send("plain mail", body=body)
    assert sent.transcript.accepted, sent.transcript.describe()
    msg = sent.delivered()
    assert str(msg.get_payload()).replace("\r\n", "\n") == body.replace("\r\n", "\n")
    assert float(msg["X-Milterfilters-Score"]) < 6.0
    assert msg["X-Spam-Flag"] is None
    decision = sent.decision()
    assert decision["action"] == "accept"
    assert decision["queue_id"] == sent.transcript.queue_id


def gtube_is_rejected_at_end_of_data_and_not_delivered(stack: MailStack) -> None:
    sent = stack.send("gtube", body=f"Test.\r\n{GTUBE}\r\n")
    t = sent.transcript
    assert t.data is not None and t.data.code == 354, t.describe()
    assert t.eom is not None and t.eom.code == 554 and t.eom.text.startswith("5.7.1"), t.describe()
    sent.assert_not_delivered()
    decision = sent.decision()
    assert decision["action"] == "reject"
    assert "GTUBE" in decision["symbols"]


def tag_decision_delivers_with_spam_headers(stack: MailStack) -> None:
    """``stack`` runs :data:`TAG_CONFIG`."""
    sent = stack.send("tagged", body=f"{GTUBE}\r\n")
    assert sent.transcript.accepted, sent.transcript.describe()
    msg = sent.delivered()
    assert msg["X-Spam-Flag"] == "YES"
    assert float(msg["X-Milterfilters-Score"]) == pytest.approx(7.0)
    assert "GTUBE" in msg["X-Milterfilters-Symbols"]
    assert sent.decision()["action"] == "tag"


def tempfails_and_keeps_nothing(stack: MailStack, subject: str) -> Submission:
    """With the milter unreachable the MTA answers 4xx (so the client keeps the mail) and
    delivers nothing."""
    sent = stack.send(subject)
    assert sent.transcript.final.temporary, sent.transcript.describe()
    assert not sent.transcript.accepted
    sent.assert_not_delivered(grace=0.5)
    return sent


def resent_mail_is_delivered(sent: Submission) -> None:
    again = sent.resend()
    assert again.transcript.accepted, again.transcript.describe()
    again.delivered()


def absent_milter_tempfails_until_it_starts(stack: MailStack) -> None:
    """``stack``'s milter was never started."""
    sent = tempfails_and_keeps_nothing(stack, "milter not started")
    stack.milter.start()
    resent_mail_is_delivered(sent)


def killed_milter_tempfails_until_it_restarts(stack: MailStack) -> None:
    """``stack`` is private: its milter gets SIGKILLed (supervisor and worker) and restarted."""
    assert stack.send("before the crash").transcript.accepted
    stack.milter.kill()  # the unix socket file stays behind, as after a crash
    sent = tempfails_and_keeps_nothing(stack, "milter killed")
    stack.milter.start()  # replaces the stale socket
    resent_mail_is_delivered(sent)


def sasl_login_and_client_address_reach_the_milter(
    stack: MailStack,
    *,
    client: str,
    xclient: Mapping[str, str] | None = None,
    source_address: str | None = None,
) -> None:
    """Real AUTH PLAIN against the MTA's sasldb from a client presented by ``xclient`` or
    ``source_address``; ``client`` is the decision's expected ``client`` field."""
    sent = stack.send("sasl", auth=(LOGIN, PASSWORD), xclient=xclient, source_address=source_address)
    assert sent.transcript.auth is not None and sent.transcript.auth.code == 235, sent.transcript.describe()
    assert sent.transcript.accepted, sent.transcript.describe()
    decision = sent.decision()
    assert decision["auth"] == LOGIN
    assert decision["client"] == client
    sent.delivered()


def wrong_sasl_password_is_refused(stack: MailStack) -> None:
    sent = stack.send("bad password", auth=(LOGIN, "wrong"))
    assert sent.transcript.auth is not None and sent.transcript.auth.code == 535, sent.transcript.describe()
    assert sent.transcript.mail is None
