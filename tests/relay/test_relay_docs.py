"""docs/relay.md and examples/relay.toml say what the relay and ratelimit filters do: keep them true."""

import re
import tomllib
from typing import Any

import pytest

import milterfilters
from milterfilters.config import config_from_dict
from tests.support.paths import PROJECT_ROOT
from tests.support.redisserver import RedisTestServer

ROOT = PROJECT_ROOT
EXAMPLE = ROOT / "examples" / "relay.toml"
DOC = ROOT / "docs" / "relay.md"
MESSAGE = b"Subject: test\r\n\r\nhello\r\n"


def test_the_documented_config_is_the_example_file() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    example = "".join(
        line + "\n" for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if line[:1] != "#"
    )
    assert blocks[0].strip() == example.strip()


@pytest.fixture
def chain(redis_server: RedisTestServer) -> milterfilters.Chain:
    data: dict[str, Any] = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["ratelimit"]["redis_url"] = redis_server.url  # never the system's Redis
    data["ratelimit"]["key_prefix"] = "test:docs:"
    return milterfilters.build_chain(config_from_dict(data, source=str(EXAMPLE)))


def answers(outcome: milterfilters.Outcome) -> list[str]:
    return [
        f"{r.address}: {r.as_dict()['action']}" + (f" {r.decision.reply}" if r.as_dict()["reply"] else "")
        for r in outcome.recipients
    ]


def test_documented_answers(chain: milterfilters.Chain) -> None:
    outsider = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="203.0.113.5",
        mail_from="someone@remote.test",
        recipients=["victim@remote.test", "alice@example.org", "user%remote.test@example.org"],
    )
    assert answers(outsider) == [
        "victim@remote.test: reject 554 5.7.1 <victim@remote.test>: Relay access denied",
        "alice@example.org: accept",
        "user%remote.test@example.org: reject 554 5.7.1 <user%remote.test@example.org>: Relay access denied",
    ]
    assert outsider.action is milterfilters.Action.ACCEPT

    alice = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="203.0.113.5",
        auth_user="alice",
        mail_from="alice@example.org",
        recipients=["victim@remote.test"],
    )
    assert answers(alice) == ["victim@remote.test: accept"]

    bob = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="203.0.113.5",
        auth_user="bob",
        mail_from="alice@example.org",
        recipients=["victim@remote.test"],
    )
    assert bob.stage is milterfilters.Stage.MAIL
    assert (
        str(bob.decision.reply)
        == "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user bob"
    )

    forged = milterfilters.evaluate(
        chain, MESSAGE, client_ip="203.0.113.5", mail_from="alice@example.org", recipients=["bob@example.org"]
    )
    assert (
        str(forged.decision.reply) == "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in"
    )

    literal = milterfilters.evaluate(
        chain,
        MESSAGE,
        client_ip="2001:db8:1::9",
        mail_from="",
        recipients=["x@[198.51.100.25]", "x@[192.0.2.99]"],
    )
    assert [r.as_dict()["action"] for r in literal.recipients] == ["accept", "accept"]  # trusted network
