"""The milter asks for the macros it needs during option negotiation (SMFIF_SETSYMLIST):
even with Postfix's milter_*_macros stripped to almost nothing, the SASL login arrives."""

import pytest

pytestmark = pytest.mark.e2e


def test_macros_requested_by_the_milter_arrive(postfix_with_milter) -> None:  # type: ignore[no-untyped-def]
    stack = postfix_with_milter(
        "",
        main_cf={
            "milter_connect_macros": "j",
            "milter_mail_macros": "i",
            "milter_end_of_data_macros": "i",
        },
    )
    sent = stack.send("macros negotiated", xclient={"ADDR": "203.0.113.9", "LOGIN": "alice@test.example"})
    assert sent.transcript.accepted, sent.transcript.describe()
    decision = sent.decision()
    assert decision["auth"] == "alice@test.example"
    assert decision["client"].endswith("[203.0.113.9]")
