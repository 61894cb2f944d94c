"""Who is talking, validated before it is trusted (issue 10): logins, domains, rate-limit keys.

Each test is named for the attack it stops:

* rate limits dodged by writing the login in another case, or by a client whose address the
  MTA does not know (per-user limits vanished);
* a SASL login of only white space (or with control characters) taken as authenticated,
  which opened relaying;
* recipient domains in full-width letters or with an ideographic full stop mapped onto our
  local domain by UTS #46, although they are not IDNA2008 names.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import Milter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import milterfilters
from milterfilters.config import config_from_dict
from milterfilters.core.context import Auth, Connection
from milterfilters.core.logins import login_key, login_problem, valid_login
from milterfilters.core.schema import ConfigError
from milterfilters.core.services import Services
from milterfilters.milter.adapter import ChainHolder, make_milter_class
from tests.support.plainmta import PlainMTA

MESSAGE = b"From: someone@example.net\r\nSubject: identity\r\n\r\nhello\r\n"
RELAY: dict[str, Any] = {"local_domains": ["test.example", "kelvin.example"], "trusted_networks": []}
OUTSIDER = "203.0.113.5"
WINDOW = 3600


class Clock:
    """A clock that stands still (``Services.clock``)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def relay_chain(**relay: Any) -> milterfilters.Chain:
    return milterfilters.build_chain(config_from_dict({"relay": {**RELAY, **relay}}))


def limited_chain(**ratelimit: Any) -> milterfilters.Chain:
    config = config_from_dict(
        {"relay": RELAY, "ratelimit": {"enabled": True, "window_seconds": WINDOW, **ratelimit}}
    )
    return milterfilters.build_chain(config, services=Services(clock=Clock()))


def answer(decision: milterfilters.Decision) -> tuple[str, int | None, str | None]:
    """(action, code, enhanced code); a stage that lets the transaction go on says "accept"."""
    reply = decision.reply
    action = "accept" if decision.action is milterfilters.Action.CONTINUE else decision.action.label
    return (action, reply and reply.code, reply and reply.enhanced)


ACCEPT = ("accept", None, None)
DENIED = ("reject", 554, "5.7.1")
BAD_RECIPIENT = ("reject", 501, "5.1.3")
BAD_SENDER = ("reject", 501, "5.1.7")
RATE_LIMITED = ("tempfail", 451, "4.7.1")


def rcpt_answer(chain: milterfilters.Chain, rcpt: str, *, auth_user: str | None = None) -> tuple[Any, ...]:
    outcome = milterfilters.evaluate(
        chain, MESSAGE, client_ip=OUTSIDER, auth_user=auth_user, mail_from="", recipients=[rcpt]
    )
    return answer(outcome.recipients[0].decision)


def mail_answer(session: milterfilters.Session, login: str | None) -> tuple[Any, ...]:
    auth = Auth(login=login, mechanism="PLAIN") if login is not None else None
    return answer(session.mail("someone@example.net", auth=auth))


# -- rate limits: one key per user, whatever the spelling ---------------------------------


def test_rate_limit_cannot_be_dodged_by_changing_the_case_of_the_login() -> None:
    chain = limited_chain(messages_per_user=2)
    session = chain.session(Connection(client_address=OUTSIDER))
    answers = [mail_answer(session, login) for login in ("erin", "Erin", "ERIN", "eRiN")]
    assert answers == [ACCEPT, ACCEPT, RATE_LIMITED, RATE_LIMITED]
    assert mail_answer(session, "frank") == ACCEPT  # another user has a count of their own


def test_rate_limit_key_folds_case_like_sender_login_maps() -> None:
    # "STRASSE" and "straße" are one login to Unicode case folding: to both filters alike
    assert login_key("STRASSE") == login_key("straße") == login_key("Strasse")
    chain = milterfilters.build_chain(
        config_from_dict({"relay": {**RELAY, "sender_login_maps": {"straße": ["@test.example"]}}})
    )
    session = chain.session(Connection(client_address=OUTSIDER))
    assert answer(session.mail("x@test.example", auth=Auth("STRASSE"))) == ACCEPT
    assert answer(session.mail("x@test.example", auth=Auth("otto")))[:2] == ("reject", 553)
    limited = limited_chain(messages_per_user=1)
    session = limited.session(Connection(client_address=OUTSIDER))
    assert [mail_answer(session, login) for login in ("straße", "STRASSE")] == [ACCEPT, RATE_LIMITED]


def test_rate_limit_cannot_be_dodged_by_rotating_ipv6_addresses_within_the_prefix() -> None:
    chain = limited_chain(messages_per_ip=2, ipv6_prefix=48)
    clients = ["2001:db8:7:1::1", "2001:db8:7:2::1", "2001:db8:7:ffff:1::9", "2001:db8:8::1"]
    answers = [answer(chain.session(Connection(client_address=ip)).mail("a@example.net")) for ip in clients]
    assert answers == [ACCEPT, ACCEPT, RATE_LIMITED, ACCEPT]  # the last is another /48


@pytest.mark.parametrize(
    "connection",
    [
        Connection(client_address="unknown", family="unknown"),  # {client_addr} = unknown
        Connection(client_address=None, family="unix"),
        Connection(client_address="", family="unknown"),
    ],
    ids=["unknown", "none", "empty"],
)
def test_rate_limit_per_user_holds_when_the_client_address_is_unknown(connection: Connection) -> None:
    chain = limited_chain(messages_per_user=2, messages_per_ip=1, exempt_networks=["0.0.0.0/0", "::/0"])
    session = chain.session(connection)
    assert connection.ip is None
    assert [mail_answer(session, "erin") for _ in range(3)] == [ACCEPT, ACCEPT, RATE_LIMITED]
    # no address: nothing to count per IP, so unauthenticated clients are not limited by it
    assert [mail_answer(session, None) for _ in range(3)] == [ACCEPT] * 3


def adapter_ctx(chain: milterfilters.Chain) -> PlainMTA:
    Milter.factory = make_milter_class(ChainHolder(chain))
    return PlainMTA()


def connect_unknown_family(ctx: PlainMTA) -> None:
    """What libmilter passes for connect family 'U': no address, ``{client_addr}`` unknown."""
    ctx._negotiate()
    ctx._setsymval("{client_addr}", "unknown")
    ctx._stage = Milter.M_CONNECT
    assert Milter.connect_callback(ctx, "unknown", 0, None) == Milter.CONTINUE
    ctx._stage = None
    assert ctx._helo("client.example") == Milter.CONTINUE


def test_rate_limit_per_user_holds_through_the_milter_when_the_client_address_is_unknown() -> None:
    chain = limited_chain(messages_per_user=2)
    codes = []
    for _ in range(3):
        ctx = adapter_ctx(chain)
        connect_unknown_family(ctx)
        ctx._setsymval("{auth_authen}", "Erin")
        codes.append(ctx._feedFile(io.BytesIO(MESSAGE), "erin@test.example", "user@test.example"))
    assert codes == [Milter.ACCEPT, Milter.ACCEPT, Milter.TEMPFAIL]


# -- logins: validated before they are trusted --------------------------------------------

UNTRUSTED_LOGINS = [
    " ",
    "\t",
    "\u3000",  # ideographic space
    "\u00a0",
    " alice",
    "alice ",
    "alice\r\nX-Injected: 1",
    "alice\x00",
    "\u202ealice",  # right-to-left override
    "ali\u200bce",  # zero-width space
    "alice\udcff",  # an undecodable byte (surrogateescape)
    "a" * 321,
]


@pytest.mark.parametrize("login", UNTRUSTED_LOGINS, ids=repr)
def test_whitespace_or_control_login_does_not_open_relay(login: str) -> None:
    assert rcpt_answer(relay_chain(), "victim@remote.example", auth_user=login) == DENIED
    assert login_problem(login)


@pytest.mark.parametrize("login", ["alice", "alice@test.example", "John Doe", "jörg", "ERIN"])
def test_real_logins_still_open_relay(login: str) -> None:
    assert rcpt_answer(relay_chain(), "victim@remote.example", auth_user=login) == ACCEPT


def test_untrusted_login_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    chain = relay_chain()
    session = chain.session(Connection(client_address=OUTSIDER))
    with caplog.at_level("WARNING", logger="milterfilters.chain"):
        session.mail("", auth=Auth(" \r\n"))
    assert session.auth is None
    assert chain.metrics.get("untrusted_logins_total") == 1
    text = caplog.text
    assert "SASL login not trusted (only white space)" in text and "\r" not in text


def adapter_rcpt_code(login: str) -> int:
    ctx = adapter_ctx(relay_chain())
    ctx._connect(host="client.example", ip=OUTSIDER)
    ctx._setsymval("{auth_authen}", login)
    ctx._setsymval("{auth_type}", "PLAIN")
    return ctx._feedFile(io.BytesIO(MESSAGE), "", "victim@remote.example")  # type: ignore[no-any-return]


def check_rcpt_action(tmp_path: Path, login: str) -> str:
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\nlocal_domains = ["test.example"]\ntrusted_networks = []\n')
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    args = ["--config", str(config), "--json", "--client-ip", OUTSIDER, "--auth-user", login]
    args += ["--mail-from", "", "--rcpt", "victim@remote.example", str(message)]
    r = subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", "check", *args], capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["recipients"][0]["action"])


@pytest.mark.parametrize(("login", "action"), [(" ", "reject"), ("\u3000", "reject"), ("alice", "accept")])
def test_whitespace_login_check_command_and_milter_agree(tmp_path: Path, login: str, action: str) -> None:
    assert check_rcpt_action(tmp_path, login) == action
    assert adapter_rcpt_code(login) == (Milter.REJECT if action == "reject" else Milter.ACCEPT)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_no_trusted_login_carries_white_space_ends_or_control_characters(login: str) -> None:
    if valid_login(login):
        assert login and login.strip() == login
        assert all(c.isprintable() or c == " " for c in login), login


# -- domains: IDNA2008 as written, no UTS #46 mapping onto ours ---------------------------

LOOKALIKE_DOMAINS = {
    "full-width letters": "\uff54\uff45\uff53\uff54.example",
    "full-width capitals": "\uff34\uff25\uff33\uff34.example",
    "ideographic full stop": "test\u3002example",
    "full-width full stop": "test\uff0eexample",
    "half-width ideographic full stop": "test\uff61example",
    "kelvin sign": "\u212aelvin.example",
    "upper-case u-label": "TÉST.example",
}


@pytest.mark.parametrize("domain", LOOKALIKE_DOMAINS.values(), ids=LOOKALIKE_DOMAINS.keys())
def test_full_width_or_ideographic_full_stop_recipient_domain_is_refused(domain: str) -> None:
    chain = relay_chain()
    assert rcpt_answer(chain, f"user@{domain}") == BAD_RECIPIENT
    assert rcpt_answer(chain, f"<@{domain}:user@test.example>") == BAD_RECIPIENT  # in a source route too
    assert rcpt_answer(chain, "user@test.example") == ACCEPT  # the real one still is ours


@pytest.mark.parametrize("domain", LOOKALIKE_DOMAINS.values(), ids=LOOKALIKE_DOMAINS.keys())
def test_full_width_or_ideographic_full_stop_sender_domain_is_refused(domain: str) -> None:
    session = relay_chain(unauthenticated_local_sender="reject").session(Connection(client_address=OUTSIDER))
    assert answer(session.mail(f"user@{domain}")) == BAD_SENDER


@pytest.mark.parametrize("domain", LOOKALIKE_DOMAINS.values(), ids=LOOKALIKE_DOMAINS.keys())
def test_full_width_or_ideographic_full_stop_domain_is_refused_in_configuration(domain: str) -> None:
    with pytest.raises(ConfigError):
        relay_chain(local_domains=[domain])
    with pytest.raises(ConfigError):
        relay_chain(sender_login_maps={"alice": [f"@{domain}"]})
