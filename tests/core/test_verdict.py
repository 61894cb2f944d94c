import pytest

from milterfilters.core.stages import LEGAL_ACTIONS, Stage, is_legal
from milterfilters.core.verdict import Action, Finding, HeaderAdd, ReplyError, SmtpReply, Verdict


def test_reply_code_class_must_match_enhanced_code() -> None:
    SmtpReply(550, "5.7.1", "ok")
    SmtpReply(451, "4.7.24", "ok")
    with pytest.raises(ReplyError):
        SmtpReply(550, "4.7.1", "mismatch")
    with pytest.raises(ReplyError):
        SmtpReply(250, "2.0.0", "not a refusal")
    with pytest.raises(ReplyError):
        SmtpReply(550, "5.7", "short enhanced code")


@pytest.mark.parametrize("text", ["a\r\nb", "a\nb", "bell\x07", "x" * 401])
def test_reply_text_is_one_clean_line(text: str) -> None:
    with pytest.raises(ReplyError):
        SmtpReply(550, "5.7.1", text)


def test_reply_must_fit_the_action() -> None:
    with pytest.raises(ReplyError):
        Verdict(action=Action.REJECT, reply=SmtpReply(451, "4.7.1", "temp"))
    with pytest.raises(ReplyError):
        Verdict(action=Action.TEMPFAIL, reply=SmtpReply(550, "5.7.1", "perm"))


def test_actions_combine_by_severity() -> None:
    assert max(Action.TAG, Action.TEMPFAIL, Action.ACCEPT) is Action.TEMPFAIL
    assert max(Action.TEMPFAIL, Action.REJECT) is Action.REJECT
    assert Action.parse(" Reject ") is Action.REJECT
    with pytest.raises(ValueError):
        Action.parse("bounce")


def test_legality_table() -> None:
    assert not is_legal(Stage.CONNECT, Action.DISCARD)
    assert not is_legal(Stage.HELO, Action.TAG)
    assert is_legal(Stage.MAIL, Action.DISCARD)
    assert is_legal(Stage.RCPT, Action.REJECT)
    assert not is_legal(Stage.RCPT, Action.ACCEPT)
    assert LEGAL_ACTIONS[Stage.EOM] >= {Action.TAG, Action.QUARANTINE, Action.DISCARD, Action.REJECT}


def test_symbols_and_header_names_are_validated() -> None:
    with pytest.raises(ValueError):
        Finding("lower_case")
    with pytest.raises(ValueError):
        HeaderAdd("Bad Name", "v")
    with pytest.raises(ValueError):
        HeaderAdd("X-Ok", "line\r\nInjected: yes")
    with pytest.raises(ValueError):  # one folded line does not make the next one a continuation
        HeaderAdd("X-Ok", "folded\n\tline\nInjected: yes")
    assert HeaderAdd("X-Ok", "folded\n\tcontinued").value.endswith("continued")
