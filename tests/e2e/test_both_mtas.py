"""What holds behind either MTA: the same scenarios run once behind a real Postfix and once
behind a real Sendmail (MTA-specific behaviour is in test_postfix.py and test_sendmail.py)."""

from __future__ import annotations

import pytest

from . import scenarios
from .conftest import StackFactory
from .mta import MailStack, StackPool

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["postfix", "sendmail"])
def mta_with_milter(request: pytest.FixtureRequest, stack_pool: StackPool) -> StackFactory:
    """Factory for a stack of the parametrized MTA and the milter (see conftest.py)."""
    factory: StackFactory = getattr(stack_pool, request.param)
    return factory


@pytest.fixture
def mta_stack(mta_with_milter: StackFactory) -> MailStack:
    """The shared stack of the parametrized MTA with the embedded default configuration."""
    return mta_with_milter()


@pytest.mark.parametrize("transport", ["unix", "inet"])
def test_plain_mail_is_delivered_with_status_headers(mta_with_milter: StackFactory, transport: str) -> None:
    stack = mta_with_milter() if transport == "unix" else mta_with_milter(transport=transport)
    scenarios.plain_mail_is_delivered_with_status_headers(stack)


def test_gtube_is_rejected_at_end_of_data_and_not_delivered(mta_stack: MailStack) -> None:
    scenarios.gtube_is_rejected_at_end_of_data_and_not_delivered(mta_stack)


def test_tag_decision_delivers_with_spam_headers(mta_with_milter: StackFactory) -> None:
    scenarios.tag_decision_delivers_with_spam_headers(mta_with_milter(scenarios.TAG_CONFIG))


def test_absent_milter_tempfails_and_the_resent_mail_is_delivered(mta_with_milter: StackFactory) -> None:
    scenarios.absent_milter_tempfails_until_it_starts(mta_with_milter(start_milter=False))


def test_killed_milter_tempfails_and_nothing_is_lost(mta_with_milter: StackFactory) -> None:
    scenarios.killed_milter_tempfails_until_it_restarts(mta_with_milter(private=True))


def test_wrong_sasl_password_is_refused(mta_stack: MailStack) -> None:
    scenarios.wrong_sasl_password_is_refused(mta_stack)
