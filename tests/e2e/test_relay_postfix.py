"""Relay authorization and rate limits behind a real Postfix that leaves relaying to the milter.

Postfix runs with ``relay_domains = static:all`` (so it never refuses relaying itself) and the
test client poses as any client address and SASL login with XCLIENT. Every case is also run
through ``milterfilters check --json`` with the same configuration: the two must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from tests.support.redisserver import RedisTestServer

from .conftest import StackFactory
from .mta import MailStack, Reply

pytestmark = pytest.mark.e2e

RELAY_CONFIG = """\
[relay]
local_domains = ["test.example", "bücher.example", ".sub.test.example"]
relay_domains = ["backup.example"]
local_address_literals = ["127.0.0.1"]
unauthenticated_local_sender = "reject"

[relay.sender_login_maps]
"alice@test.example" = ["@client.example", "alice@test.example"]
"""

#: docs/relay.md's "the milter decides relay" settings (relay_all adds relay_domains = static:all),
#: and IPv6 so that XCLIENT ADDR=IPV6:... is accepted
POSTFIX_SETTINGS = {
    "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    "allow_untrusted_routing": "yes",
    "inet_protocols": "all",
}

OUTSIDER = {"ADDR": "203.0.113.5", "NAME": "mail.outside.example"}
OUTSIDER_V6 = {"ADDR": "IPV6:2001:db8:9::1", "NAME": "mail6.outside.example"}
ALICE = {"ADDR": "203.0.113.5", "NAME": "mail.outside.example", "LOGIN": "alice@test.example"}
MALLORY = {"ADDR": "203.0.113.5", "NAME": "mail.outside.example", "LOGIN": "mallory@test.example"}


@dataclass(frozen=True)
class Case:
    """One transaction: who (XCLIENT attributes; None = a trusted loopback client), from, to."""

    name: str
    xclient: Mapping[str, str] | None
    rcpt: Sequence[str]
    mail_from: str = "someone@client.example"
    expected: Sequence[str] = field(default_factory=tuple)  # per recipient: "250" or "554 5.7.1", ...


CASES = [
    Case("untrusted relay", OUTSIDER, ["victim@remote.test"], expected=["554 5.7.1"]),
    Case("untrusted relay over IPv6", OUTSIDER_V6, ["victim@remote.test"], expected=["554 5.7.1"]),
    Case(
        "untrusted relay, null sender", OUTSIDER, ["victim@remote.test"], mail_from="", expected=["554 5.7.1"]
    ),
    Case(
        "local delivery among refused relays",
        OUTSIDER,
        ["victim@remote.test", "user@test.example", "USER@Test.Example", "user@deep.sub.test.example"],
        expected=["554 5.7.1", "250", "250", "250"],
    ),
    Case(
        "backup MX domain",
        OUTSIDER,
        ["user@backup.example", "user@x.backup.example"],
        expected=["250", "554 5.7.1"],
    ),
    Case("IDN in A-label form", OUTSIDER, ["user@xn--bcher-kva.example"], expected=["250"]),
    Case("percent hack", OUTSIDER, ["victim%remote.test@test.example"], expected=["554 5.7.1"]),
    Case("bang path", OUTSIDER, ["remote.test!victim@test.example"], expected=["554 5.7.1"]),
    Case("quoted @ in local part", OUTSIDER, ['"victim@remote.test"@test.example'], expected=["554 5.7.1"]),
    Case("source route", OUTSIDER, ["@test.example:victim@remote.test"], expected=["554 5.7.1"]),
    Case("foreign address literal", OUTSIDER, ["user@[203.0.113.99]"], expected=["554 5.7.1"]),
    Case("our address literal", OUTSIDER, ["user@[127.0.0.1]"], expected=["250"]),
    Case("bad recipient syntax", OUTSIDER, ["user@@test.example"], expected=["501 5.1.3"]),
    Case(
        "very long local part",
        OUTSIDER,
        ["v" * 200 + "@test.example", "v" * 200 + "@remote.test"],
        expected=["250", "554 5.7.1"],
    ),
    Case("authenticated relay", ALICE, ["victim@remote.test"], expected=["250"]),
    Case(
        "authenticated, own address",
        ALICE,
        ["victim@remote.test"],
        mail_from="alice@test.example",
        expected=["250"],
    ),
    Case(
        "authenticated, someone else's address", MALLORY, ["victim@remote.test"], expected=["mail 553 5.7.1"]
    ),
    Case(
        "outsider using our domain",
        OUTSIDER,
        ["user@test.example"],
        mail_from="ceo@test.example",
        expected=["mail 553 5.7.1"],
    ),
    Case(
        "trusted network relay", None, ["victim@remote.test", "victim%x@remote.test"], expected=["250", "250"]
    ),
]


def postfix_answer(reply: Reply | None) -> str:
    """``250``, or the code and enhanced status code of a refusal (``554 5.7.1``)."""
    assert reply is not None
    if reply.positive:
        return str(reply.code)
    return f"{reply.code} {reply.text.split()[0]}"


def check_answers(stack: MailStack, case: Case) -> list[str]:
    """What ``milterfilters check --json`` says for the same transaction, in the same form."""
    xclient = case.xclient or {}
    client_ip = xclient.get("ADDR", "127.0.0.1").removeprefix("IPV6:")
    args = ["--config", str(stack.milter.config_path), "--json", "--client-ip", client_ip]
    args += ["--mail-from", case.mail_from]
    if "LOGIN" in xclient:
        args += ["--auth-user", xclient["LOGIN"]]
    for rcpt in case.rcpt:
        args += ["--rcpt", rcpt]
    r = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "check", *args, "-"],
        input=b"Subject: check\r\n\r\nhello\r\n",
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    if out["stage"] == "mail":
        return [f"mail {out['reply']['code']} {out['reply']['enhanced']}"]
    return [
        "250" if rcpt["reply"] is None else f"{rcpt['reply']['code']} {rcpt['reply']['enhanced']}"
        for rcpt in out["recipients"]
    ]


@pytest.fixture
def relay_stack(postfix_with_milter: StackFactory) -> MailStack:
    return postfix_with_milter(RELAY_CONFIG, relay_all=True, main_cf=POSTFIX_SETTINGS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_postfix_and_check_agree(relay_stack: MailStack, case: Case) -> None:
    sent = relay_stack.send(case.name, mail_from=case.mail_from, rcpt_to=case.rcpt, xclient=case.xclient)
    t = sent.transcript
    assert t.xclient is None or t.xclient.code == 220, t.describe()
    if t.mail is not None and not t.mail.positive:
        through_postfix = [f"mail {postfix_answer(t.mail)}"]
    else:
        through_postfix = [postfix_answer(t.rcpt.get(rcpt)) for rcpt in case.rcpt]
    assert through_postfix == list(case.expected), t.describe()
    assert check_answers(relay_stack, case) == through_postfix


def test_untrusted_relay_is_refused_at_rcpt_and_not_delivered(relay_stack: MailStack) -> None:
    sent = relay_stack.send("relay attempt", rcpt_to=["victim@remote.test"], xclient=OUTSIDER)
    reply = sent.transcript.rcpt["victim@remote.test"]
    assert str(reply) == "554 5.7.1 <victim@remote.test>: Relay access denied"
    assert sent.transcript.data is None
    sent.assert_not_delivered()
    decision = sent.decision(stage="rcpt")
    assert decision["action"] == "reject" and "RELAY_DENIED" in decision["symbols"]


def test_local_delivery_and_authenticated_relay_are_delivered(relay_stack: MailStack) -> None:
    local = relay_stack.send("local delivery", rcpt_to=["user@test.example"], xclient=OUTSIDER)
    assert local.transcript.accepted, local.transcript.describe()
    local.delivered()
    relayed = relay_stack.send("authenticated relay", rcpt_to=["friend@remote.test"], xclient=ALICE)
    assert relayed.transcript.accepted, relayed.transcript.describe()
    relayed.delivered()


# -- rate limits ---------------------------------------------------------------------------


def ratelimit_config(redis_server: RedisTestServer, prefix: str, **limits: int) -> str:
    lines = [f"{key} = {value}" for key, value in limits.items()]
    return "\n".join(
        [
            '[relay]\nlocal_domains = ["test.example"]\n',
            "[ratelimit]",
            "enabled = true",
            'backend = "redis"',
            f'redis_url = "{redis_server.url}"',
            f'key_prefix = "{prefix}"',
            *lines,
            "",
        ]
    )


def rate_limited(stack: MailStack, xclient: Mapping[str, str], subject: str) -> bool:
    t = stack.send(subject, rcpt_to=["user@test.example"], xclient=xclient).transcript
    if t.accepted:
        return False
    assert t.mail is not None and t.mail.code == 451 and t.mail.text.startswith("4.7.1"), t.describe()
    return True


def test_rate_limit_trips_and_recovers(
    postfix_with_milter: StackFactory, redis_server: RedisTestServer
) -> None:
    window = 2
    config = ratelimit_config(
        redis_server, f"e2e:{uuid.uuid4().hex}:", window_seconds=window, messages_per_ip=2
    )
    stack = postfix_with_milter(config, relay_all=True)
    client = {"ADDR": "198.51.100.7"}
    assert [rate_limited(stack, client, f"burst {i}") for i in range(3)] == [False, False, True]
    assert not rate_limited(stack, {"ADDR": "198.51.100.8"}, "another client")
    time.sleep(2 * window + 0.2)  # the sliding window has moved past the burst
    assert not rate_limited(stack, client, "after the window")


def test_two_milters_sharing_redis_enforce_one_limit(
    postfix_with_milter: StackFactory, redis_server: RedisTestServer
) -> None:
    config = ratelimit_config(
        redis_server, f"e2e:{uuid.uuid4().hex}:", window_seconds=600, messages_per_user=3
    )
    first = postfix_with_milter(config, relay_all=True, private=True)
    second = postfix_with_milter(config, relay_all=True, private=True)
    assert first.milter.pid != second.milter.pid
    alice = {"ADDR": "192.0.2.50", "LOGIN": "alice@test.example"}
    results = [rate_limited(stack, alice, f"shared {i}") for i, stack in enumerate([first, second] * 3)]
    assert results == [False, False, False, True, True, True]
    bob = {"ADDR": "192.0.2.50", "LOGIN": "bob@test.example"}
    assert not rate_limited(second, bob, "another user")
