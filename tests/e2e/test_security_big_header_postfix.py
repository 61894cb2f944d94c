"""Hostile message shapes through a real Postfix: each gets a decision the client hears (250, or a
5xx with a reason) and a decision log line, and nothing is tempfailed for ever.

The attack: a phishing mail with a 126 KB ``From:`` field made libmilter drop the connection
mid-header at its 64 KB packet limit, with no log line, and an MTA with
``milter_default_action = tempfail`` defers such a message on every retry. Postfix 3.7 (here)
hands a milter at most ~60 KB of one field, so behind it the message must simply pass; the
packet limit itself is tested against the real worker in tests/milter/test_security_big_header.py.
"""

from __future__ import annotations

import pytest

from tests.support.hostile import KINDS, hostile_message

from .mta import MailStack, StackPool, Submission
from .runtime import unique_token

pytestmark = pytest.mark.e2e


def _send_hostile(stack: MailStack, kind: str) -> Submission:
    token = unique_token()
    hostile = hostile_message(kind, f"<{token}@client.example>", f"hostile-{token}@client.example")
    return stack.send(
        kind,
        message=hostile.message,
        mail_from=hostile.mail_from,
        xclient={"ADDR": "203.0.113.7"},
        bare_lf=hostile.bare_lf,
    )


#: Postfix as at a receiving MX: header fields of remote clients are not rewritten (rewriting
#: parses address fields and cuts them at ``header_address_token_limit`` tokens)
NO_HEADER_REWRITE = {"local_header_rewrite_clients": "", "remote_header_rewrite_domain": ""}


def test_a_126_kb_from_field_is_decided_and_delivered_not_tempfailed(stack_pool: StackPool) -> None:
    postfix_stack = stack_pool.postfix("", main_cf=NO_HEADER_REWRITE)
    sent = _send_hostile(postfix_stack, "big-header")
    assert sent.transcript.accepted, sent.transcript.describe()
    assert sent.delivered() is not None
    decision = sent.decision(stage="eom")
    assert decision["action"] == "accept"
    log = postfix_stack.milter.log_text(sent.log_offset)
    assert "connection ended inside the message header" not in log


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_hostile_shapes_get_a_decision_with_a_reason(postfix_stack: MailStack, kind: str) -> None:
    sent = _send_hostile(postfix_stack, kind)
    final = sent.transcript.final
    assert final.positive or final.permanent, sent.transcript.describe()
    if final.permanent:
        assert final.text.strip(), "a refusal must carry its reason"
        return
    assert sent.delivered() is not None
    assert sent.decision(stage="eom")["action"] in ("accept", "tag", "quarantine")
