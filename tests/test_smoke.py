import milterfilters
from tests.support.defaultconfig import default_config

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_gtube_rejected_and_plain_accepted() -> None:
    chain = milterfilters.build_chain(default_config())
    spam = milterfilters.evaluate(chain, b"Subject: t\n\n" + GTUBE + b"\n", recipients=["a@b.example"])
    assert spam.action is milterfilters.Action.REJECT
    assert spam.decision.reply is not None and spam.decision.reply.code == 554
    ham = milterfilters.evaluate(chain, b"Subject: t\n\nhello\n", recipients=["a@b.example"])
    assert ham.action is milterfilters.Action.ACCEPT
