"""What a library user or plugin author meets at ``import milterfilters``."""

from __future__ import annotations

import inspect
import logging
from typing import ClassVar

import pytest

import milterfilters
from milterfilters import (
    Action,
    Chain,
    ChainLink,
    ChainOrderError,
    Context,
    Filter,
    Finding,
    Policy,
    Services,
    Verdict,
)


@pytest.mark.parametrize("name", milterfilters.__all__)
def test_every_public_name_is_importable_and_documented(name: str) -> None:
    obj = getattr(milterfilters, name)
    assert inspect.getdoc(obj), f"milterfilters.{name} has no docstring"


def test_actions_print_as_words() -> None:
    assert str(Action.TAG) == "tag" and f"{Action.REJECT}" == "reject" and f"{Action.ACCEPT:>8}" == "  accept"
    assert Action.REJECT > Action.TAG  # still ordered by severity


def test_config_from_a_dict_and_doc_are_exported() -> None:
    config = milterfilters.config_from_dict({"actions": {"tag": 4.0}, "gtube": {"enabled": False}})
    assert config.actions.tag == 4.0 and not config.filter("gtube").settings.enabled
    with pytest.raises(milterfilters.ConfigError, match=r"actions\.tag"):
        milterfilters.config_from_dict({"actions": {"tag": "high"}})
    assert "config" in milterfilters.render_config(config)
    assert callable(milterfilters.doc)


class Finder(Filter):
    """Finds SYMBOL_A at end of data."""

    name = "finder"
    symbols: ClassVar[dict[str, float]] = {"SYMBOL_A": 7.0}

    def eom(self, ctx: Context) -> Verdict | None:
        return Verdict.found(Finding("SYMBOL_A"))


class Reader(Filter):
    """Reads what ``finder`` found."""

    name = "reader"
    after = ("finder",)

    def eom(self, ctx: Context) -> Verdict | None:
        return None


MESSAGE = b"Subject: hi\r\n\r\nbody\r\n"


def test_a_filters_own_weights_count_in_a_chain_built_in_code() -> None:
    chain = Chain([ChainLink(Finder(None, Services()))], Policy(tag=6.0, reject=15.0))
    outcome = milterfilters.evaluate(chain, MESSAGE, recipients=["b@example.net"])
    assert outcome.decision.score == 7.0 and outcome.action is Action.TAG
    # the policy's weights still override the filter's
    chain = Chain([ChainLink(Finder(None, Services()))], Policy(weights={"SYMBOL_A": 1.0}))
    assert milterfilters.evaluate(chain, MESSAGE).decision.score == 1.0


def test_a_filter_before_one_it_reads_is_refused_and_a_missing_one_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ChainOrderError, match="'finder' must come before"):
        Chain([ChainLink(Reader(None, Services())), ChainLink(Finder(None, Services()))])
    Chain([ChainLink(Finder(None, Services())), ChainLink(Reader(None, Services()))])
    with caplog.at_level(logging.WARNING):
        Chain([ChainLink(Reader(None, Services()))])
    assert "the finder filter is disabled" in caplog.text


def test_a_recipient_says_accept_the_same_way_everywhere() -> None:
    chain = milterfilters.build_chain({"relay": {"local_domains": ["example.net"]}})
    outcome = milterfilters.evaluate(chain, MESSAGE, recipients=["b@example.net"])
    (rcpt,) = outcome.recipients
    assert rcpt.action is Action.ACCEPT and rcpt.as_dict()["action"] == str(rcpt.action) == "accept"
