"""Relay authorization: a table of clients and addresses with the expected per-recipient answer.

Every row runs a whole transaction through the chain API (``milterfilters.evaluate``);
a few rows also go through ``milterfilters check --json`` as a subprocess.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import milterfilters
from milterfilters.config import config_from_dict
from milterfilters.core.schema import ConfigError
from tests.support.defaultconfig import default_config

RELAY_CONFIG: dict[str, Any] = {
    "trusted_networks": ["127.0.0.0/8", "::1/128", "192.0.2.0/24", "2001:db8:1::/48"],
    "local_domains": ["example.org", ".example.org", "bücher.example"],
    "relay_domains": ["Backup.TEST."],
    "local_address_literals": ["198.51.100.7", "2001:db8:ffff::25"],
}

MESSAGE = b"From: someone@example.net\r\nSubject: relay test\r\n\r\nhello\r\n"


class Client(NamedTuple):
    ip: str
    auth_user: str | None = None


TRUSTED_V4 = Client("192.0.2.10")
TRUSTED_V6 = Client("2001:db8:1::5")
TRUSTED_MAPPED = Client("::ffff:192.0.2.10")
LOOPBACK = Client("127.0.0.1")
UNTRUSTED_V4 = Client("203.0.113.5")
UNTRUSTED_V6 = Client("2001:db8:9::1")
UNTRUSTED_MAPPED = Client("::ffff:203.0.113.5")
AUTHENTICATED = Client("203.0.113.5", "alice")

TRUSTED = (TRUSTED_V4, TRUSTED_V6, TRUSTED_MAPPED, LOOPBACK, AUTHENTICATED)
UNTRUSTED = (UNTRUSTED_V4, UNTRUSTED_V6, UNTRUSTED_MAPPED)
EVERYONE = TRUSTED + UNTRUSTED

ACCEPT = ("accept", None, None)
DENIED = ("reject", 554, "5.7.1")
BAD_SYNTAX = ("reject", 501, "5.1.3")

# recipient -> (answer for trusted/authenticated clients, answer for untrusted clients)
RECIPIENTS: list[tuple[str, tuple[str, int | None, str | None], tuple[str, int | None, str | None]]] = [
    # destinations
    ("victim@remote.test", ACCEPT, DENIED),
    ("user@example.org", ACCEPT, ACCEPT),
    ("<user@example.org>", ACCEPT, ACCEPT),
    ("User@EXAMPLE.ORG", ACCEPT, ACCEPT),
    ("user@example.org.", ACCEPT, ACCEPT),
    ("user@Example.Org.", ACCEPT, ACCEPT),
    ("user@example.org..", BAD_SYNTAX, BAD_SYNTAX),
    ("user@sub.example.org", ACCEPT, ACCEPT),
    ("user@deep.sub.EXAMPLE.org.", ACCEPT, ACCEPT),
    ("user@notexample.org", ACCEPT, DENIED),
    ("user@example.org.evil.test", ACCEPT, DENIED),
    ("user@backup.test", ACCEPT, ACCEPT),
    ("user@BACKUP.test.", ACCEPT, ACCEPT),
    ("user@sub.backup.test", ACCEPT, DENIED),  # relay_domains entry without a leading dot
    ("Postmaster", ACCEPT, ACCEPT),
    ("<postmaster>", ACCEPT, ACCEPT),
    ("postmaster@remote.test", ACCEPT, DENIED),
    # IDN: U-labels and A-labels name the same domain
    ("user@bücher.example", ACCEPT, ACCEPT),
    ("user@Bücher.EXAMPLE.", ACCEPT, ACCEPT),  # ASCII letters compare in any case
    # a U-label must be valid IDNA2008 as written: no UTS #46 case mapping (issue 10)
    ("user@BÜCHER.example.", BAD_SYNTAX, BAD_SYNTAX),
    ("user@xn--bcher-kva.example", ACCEPT, ACCEPT),
    ("user@XN--BCHER-KVA.example", ACCEPT, ACCEPT),
    ("user@bücher.test", ACCEPT, DENIED),
    # 8-bit local parts (SMTPUTF8) and raw undecodable bytes
    ("jörg@example.org", ACCEPT, ACCEPT),
    ("jörg@remote.test", ACCEPT, DENIED),
    ('"jörg doe"@remote.test', ACCEPT, DENIED),
    ("j\udcf6rg@example.org", BAD_SYNTAX, BAD_SYNTAX),
    # sender-specified routing
    ("user%remote.test@example.org", ACCEPT, DENIED),
    ("USER%REMOTE.TEST@EXAMPLE.ORG.", ACCEPT, DENIED),
    ("remote.test!user@example.org", ACCEPT, DENIED),
    ('"user@remote.test"@example.org', ACCEPT, DENIED),
    ('"user%remote.test"@example.org', ACCEPT, DENIED),
    ('"remote.test!user"@backup.test', ACCEPT, DENIED),
    ('"user\\@remote.test"@example.org', ACCEPT, DENIED),
    ("@example.org:user@remote.test", ACCEPT, DENIED),
    ("<@example.org:user@remote.test>", ACCEPT, DENIED),
    ("@example.org,@backup.test:user@example.org", ACCEPT, DENIED),
    ("user@[198.51.100.7]", ACCEPT, ACCEPT),
    ("user@[203.0.113.99]", ACCEPT, DENIED),
    ("user@[IPv6:2001:db8:ffff::25]", ACCEPT, ACCEPT),
    ("user@[IPv6:2001:DB8:FFFF:0:0:0:0:25]", ACCEPT, ACCEPT),
    ("user@[IPv6:::ffff:198.51.100.7]", ACCEPT, ACCEPT),
    ("user@[IPv6:2001:db8::99]", ACCEPT, DENIED),
    ("user@[x-private:whatever]", ACCEPT, DENIED),
    # syntax
    ("", BAD_SYNTAX, BAD_SYNTAX),
    ("<>", BAD_SYNTAX, BAD_SYNTAX),
    ("user", BAD_SYNTAX, BAD_SYNTAX),
    ("user@@example.org", BAD_SYNTAX, BAD_SYNTAX),
    ("user@exa mple.org", BAD_SYNTAX, BAD_SYNTAX),
    (".user@example.org", BAD_SYNTAX, BAD_SYNTAX),
    ('"open@example.org', BAD_SYNTAX, BAD_SYNTAX),
    ("user@[192.0.2.300]", BAD_SYNTAX, BAD_SYNTAX),
    ("user@[IPv6:nonsense]", BAD_SYNTAX, BAD_SYNTAX),
    # very long addresses: long local parts are legal, DNS limits are not negotiable
    ("v" * 200 + "@example.org", ACCEPT, ACCEPT),
    ("v" * 200 + "@remote.test", ACCEPT, DENIED),
    ("v" * 990 + "@example.org", BAD_SYNTAX, BAD_SYNTAX),
    ("user@" + "d" * 63 + ".example.org", ACCEPT, ACCEPT),
    ("user@" + "d" * 64 + ".example.org", BAD_SYNTAX, BAD_SYNTAX),
]

SENDERS = ["someone@example.net", ""]  # a normal sender and the null sender: same rule


@pytest.fixture(scope="module")
def chain() -> milterfilters.Chain:
    return milterfilters.build_chain(config_from_dict({"relay": RELAY_CONFIG}))


def rows() -> list[Any]:
    out = []
    for rcpt, trusted_answer, untrusted_answer in RECIPIENTS:
        for client in EVERYONE:
            answer = trusted_answer if client in TRUSTED else untrusted_answer
            label = f"{client.ip}{'+' + client.auth_user if client.auth_user else ''}->{rcpt[:40]!r}"
            out.append(pytest.param(client, rcpt, answer, id=label))
    return out


def answer_of(outcome: milterfilters.Outcome) -> tuple[str, int | None, str | None]:
    (recipient,) = outcome.recipients
    d = recipient.as_dict()
    reply = recipient.decision.reply if d["reply"] else None
    return (str(d["action"]), reply.code if reply else None, reply.enhanced if reply else None)


@pytest.mark.parametrize("sender", SENDERS, ids=["sender", "null-sender"])
@pytest.mark.parametrize(("client", "rcpt", "expected"), rows())
def test_battery(
    chain: milterfilters.Chain,
    client: Client,
    rcpt: str,
    expected: tuple[str, int | None, str | None],
    sender: str,
) -> None:
    outcome = milterfilters.evaluate(
        chain, MESSAGE, client_ip=client.ip, auth_user=client.auth_user, mail_from=sender, recipients=[rcpt]
    )
    assert answer_of(outcome) == expected
    assert not outcome.decision.errors
    if expected == DENIED:
        reply = outcome.recipients[0].decision.reply
        assert reply is not None
        shown = rcpt.strip("<>").encode("ascii", "backslashreplace").decode()
        if len(shown) <= 200:
            assert reply.text == f"<{shown}>: Relay access denied"
        else:  # the middle of a very long address is left out; the domain stays
            assert reply.text.startswith(f"<{shown[:50]}") and reply.text.endswith(
                "@remote.test>: Relay access denied"
            )
            assert len(reply.text) < 250
    if expected[0] == "reject":
        assert outcome.recipients[0].decision.decided_by == "relay"


def test_each_recipient_is_judged_on_its_own(chain: milterfilters.Chain) -> None:
    outcome = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip=UNTRUSTED_V4.ip,
        mail_from="someone@example.net",
        recipients=["victim@remote.test", "user@example.org", "user%x@example.org", "other@backup.test"],
    )
    assert [
        answer_of(milterfilters.Outcome(o.decision, outcome.stage, (o,))) for o in outcome.recipients
    ] == [
        DENIED,
        ACCEPT,
        DENIED,
        ACCEPT,
    ]
    assert outcome.action is milterfilters.Action.ACCEPT  # delivered to the two it may reach
    symbols = [o.decision.symbols for o in outcome.recipients]
    assert symbols[0] == ("RELAY_DENIED",) and symbols[2] == ("RELAY_UNTRUSTED_ROUTING",)


def test_every_recipient_refused_refuses_the_transaction(chain: milterfilters.Chain) -> None:
    outcome = milterfilters.evaluate(
        chain, MESSAGE, client_ip=UNTRUSTED_V6.ip, mail_from="", recipients=["a@remote.test", "b@remote.test"]
    )
    assert outcome.action is milterfilters.Action.REJECT and outcome.stage is milterfilters.Stage.RCPT


def test_invalid_sender_gets_501_5_1_7(chain: milterfilters.Chain) -> None:
    for client in (TRUSTED_V4, UNTRUSTED_V4):
        outcome = milterfilters.evaluate(
            chain, MESSAGE, client_ip=client.ip, mail_from="bad@@example.net", recipients=["user@example.org"]
        )
        assert outcome.stage is milterfilters.Stage.MAIL
        assert outcome.decision.reply is not None
        assert (outcome.decision.reply.code, outcome.decision.reply.enhanced) == (501, "5.1.7")


# -- senders: login maps and forged local senders --------------------------------------


def sender_chain(**options: Any) -> milterfilters.Chain:
    return milterfilters.build_chain(config_from_dict({"relay": {**RELAY_CONFIG, **options}}))


@pytest.mark.parametrize(
    ("login", "sender", "allowed"),
    [
        ("alice", "alice@example.org", True),
        ("Alice", "ALICE@Example.Org.", True),
        ("alice", "alice+tag@example.org", False),
        ("alice", "bob@example.org", False),
        ("alice", "", True),  # bounces carry no address to own
        ("bob", "anyone@sub.example.org", True),
        ("bob", "anyone@example.org", False),
        ("carol", "carol@example.org", False),  # no entry: owns nothing
    ],
)
def test_sender_login_maps(login: str, sender: str, allowed: bool) -> None:
    chain = sender_chain(sender_login_maps={"alice": ["alice@example.org"], "bob": ["@sub.example.org"]})
    outcome = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="203.0.113.5",
        auth_user=login,
        mail_from=sender,
        recipients=["x@remote.test"],
    )
    if allowed:
        assert outcome.action is milterfilters.Action.ACCEPT
    else:
        assert outcome.stage is milterfilters.Stage.MAIL and outcome.decision.reply is not None
        assert (outcome.decision.reply.code, outcome.decision.reply.enhanced) == (553, "5.7.1")
        assert outcome.decision.symbols == ("RELAY_SENDER_LOGIN_MISMATCH",)


def test_sender_login_maps_off_by_default() -> None:
    outcome = milterfilters.evaluate(
        sender_chain(),
        MESSAGE,
        client_ip="203.0.113.5",
        auth_user="alice",
        mail_from="ceo@example.org",
        recipients=["x@remote.test"],
    )
    assert outcome.action is milterfilters.Action.ACCEPT


@pytest.mark.parametrize(
    ("mode", "client", "action", "symbols"),
    [
        ("score", UNTRUSTED_V4, "accept", ("RELAY_LOCAL_SENDER_UNAUTHENTICATED",)),
        ("reject", UNTRUSTED_V4, "reject", ("RELAY_LOCAL_SENDER_UNAUTHENTICATED",)),
        ("off", UNTRUSTED_V4, "accept", ()),
        ("reject", AUTHENTICATED, "accept", ()),
        ("reject", TRUSTED_V6, "accept", ()),
    ],
)
def test_unauthenticated_local_sender(
    mode: str, client: Client, action: str, symbols: tuple[str, ...]
) -> None:
    chain = sender_chain(unauthenticated_local_sender=mode)
    outcome = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip=client.ip,
        auth_user=client.auth_user,
        mail_from="ceo@Sub.Example.org",
        recipients=["user@example.org"],
    )
    assert outcome.action.label == action
    assert outcome.decision.symbols == symbols
    if action == "reject":
        assert outcome.decision.reply is not None and outcome.decision.reply.code == 553


def test_local_sender_finding_is_scored() -> None:
    chain = sender_chain(unauthenticated_local_sender="score")
    outcome = milterfilters.evaluate(
        chain, MESSAGE, client_ip="203.0.113.5", mail_from="ceo@example.org", recipients=["user@example.org"]
    )
    assert outcome.decision.score == pytest.approx(3.0)


# -- defaults and configuration ----------------------------------------------------------


def test_default_configuration_trusts_this_host_and_defers_destinations_to_the_mta() -> None:
    """Enabled by default, the filter never refuses what the MTA would deliver to its own
    domains (it does not know them), yet still refuses routing tricks from outside."""
    chain = milterfilters.build_chain(default_config())
    assert chain.links[0].name == "relay"

    def answer(ip: str, rcpt: str) -> tuple[str, int | None, str | None]:
        return answer_of(
            milterfilters.evaluate(chain, MESSAGE, client_ip=ip, mail_from="", recipients=[rcpt])
        )

    assert answer("203.0.113.5", "user@anything.test") == ACCEPT
    assert answer("203.0.113.5", "user%victim.test@anything.test") == DENIED
    assert answer("203.0.113.5", "user@[192.0.2.1]") == DENIED
    assert answer("127.0.0.1", "user%victim.test@anything.test") == ACCEPT
    assert answer("::1", "user@[192.0.2.1]") == ACCEPT
    assert answer("203.0.113.5", "bad@@x") == BAD_SYNTAX


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"trusted_networks": ["10.0.0.0/33"]}, "relay"),
        ({"local_domains": ["exa mple.org"]}, "relay"),
        ({"relay_domains": ["..x"]}, "relay"),
        ({"local_address_literals": ["not-an-ip"]}, "relay"),
        ({"sender_login_maps": {"alice": ["not an address"]}}, "relay"),
        ({"sender_login_maps": {"alice": "alice@example.org"}}, "relay.sender_login_maps.alice"),
        ({"unauthenticated_local_sender": "maybe"}, "relay.unauthenticated_local_sender"),
        ({"trusted_network": ["10.0.0.0/8"]}, "relay.trusted_network"),
    ],
)
def test_configuration_errors_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"relay": options}, source="test.toml")
    assert e.value.key == key and e.value.source == "test.toml"


def test_ipv4_mapped_rule_matches_ipv4_clients() -> None:
    chain = milterfilters.build_chain(
        config_from_dict(
            {"relay": {"trusted_networks": ["::ffff:198.51.100.0/120"], "local_domains": ["x.test"]}}
        )
    )
    for ip in ("198.51.100.20", "::ffff:198.51.100.20"):
        outcome = milterfilters.evaluate(
            chain, MESSAGE, client_ip=ip, mail_from="", recipients=["a@remote.test"]
        )
        assert answer_of(outcome) == ACCEPT
    outcome = milterfilters.evaluate(chain, MESSAGE, client_ip="198.51.101.1", recipients=["a@remote.test"])
    assert answer_of(outcome) == DENIED


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.sampled_from([c.ip for c in EVERYONE]))
def test_no_address_makes_the_filter_fail(rcpt: str, sender: str, ip: str) -> None:
    chain = milterfilters.build_chain(config_from_dict({"relay": RELAY_CONFIG}))
    outcome = milterfilters.evaluate(chain, MESSAGE, client_ip=ip, mail_from=sender, recipients=[rcpt])
    assert not outcome.decision.errors
    for r in outcome.recipients:
        assert not r.decision.errors


# -- the same answers from the command line --------------------------------------------

CLI_ROWS = [
    (UNTRUSTED_V4, "victim@remote.test", DENIED),
    (UNTRUSTED_V6, "user%remote.test@example.org", DENIED),
    (UNTRUSTED_MAPPED, "user@Bücher.EXAMPLE.", ACCEPT),
    (UNTRUSTED_V4, "user@BÜCHER.example.", BAD_SYNTAX),
    (TRUSTED_V6, "victim@remote.test", ACCEPT),
    (AUTHENTICATED, "victim@remote.test", ACCEPT),
    (UNTRUSTED_V4, "user@@example.org", BAD_SYNTAX),
]


def test_check_command_agrees(tmp_path: Path) -> None:
    config = tmp_path / "milterfilters.toml"
    config.write_text(
        "[relay]\n"
        + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in RELAY_CONFIG.items()),
        encoding="utf-8",
    )
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    chain = milterfilters.build_chain(config)
    for client, rcpt, expected in CLI_ROWS:
        args = [
            "--config",
            str(config),
            "--json",
            "--client-ip",
            client.ip,
            "--mail-from",
            "",
            "--rcpt",
            rcpt,
        ]
        if client.auth_user:
            args += ["--auth-user", client.auth_user]
        r = subprocess.run(
            [sys.executable, "-m", "milterfilters.cli", "check", *args, str(message)],
            capture_output=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        (recipient,) = json.loads(r.stdout)["recipients"]
        reply = recipient["reply"]
        got = (recipient["action"], reply and reply["code"], reply and reply["enhanced"])
        assert got == expected, (client, rcpt)
        library = milterfilters.evaluate(
            chain, MESSAGE, client_ip=client.ip, auth_user=client.auth_user, mail_from="", recipients=[rcpt]
        )
        assert recipient == library.recipients[0].as_dict()
