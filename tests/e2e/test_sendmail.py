"""The milter behind a real Sendmail (unpacked from its Debian packages), queue-only delivery."""

from __future__ import annotations

import pytest

from . import scenarios
from .conftest import StackFactory
from .mta import MailStack

pytestmark = pytest.mark.e2e


def test_plain_mail_is_queued_with_status_headers(sendmail_stack: MailStack) -> None:
    scenarios.plain_mail_is_delivered_with_status_headers(sendmail_stack)


def test_gtube_is_rejected_at_end_of_data_and_not_queued(sendmail_stack: MailStack) -> None:
    scenarios.gtube_is_rejected_at_end_of_data_and_not_delivered(sendmail_stack)


def test_tag_decision_queues_with_spam_headers(sendmail_with_milter: StackFactory) -> None:
    scenarios.tag_decision_delivers_with_spam_headers(sendmail_with_milter(scenarios.TAG_CONFIG))


def test_absent_milter_tempfails_and_the_resent_mail_is_queued(sendmail_with_milter: StackFactory) -> None:
    scenarios.absent_milter_tempfails_until_it_starts(sendmail_with_milter(start_milter=False))


def test_killed_milter_tempfails_and_nothing_is_lost(sendmail_with_milter: StackFactory) -> None:
    scenarios.killed_milter_tempfails_until_it_restarts(sendmail_with_milter(private=True))


def test_sasl_auth_plain_login_and_client_address_reach_the_milter(sendmail_stack: MailStack) -> None:
    # Sendmail has no XCLIENT: connect from another loopback address instead
    scenarios.sasl_login_and_client_address_reach_the_milter(
        sendmail_stack, source_address="127.0.0.7", client="unknown[127.0.0.7]"
    )


def test_wrong_sasl_password_is_refused(sendmail_stack: MailStack) -> None:
    scenarios.wrong_sasl_password_is_refused(sendmail_stack)


def test_milter_over_tcp(sendmail_with_milter: StackFactory) -> None:
    scenarios.plain_mail_is_delivered_with_status_headers(sendmail_with_milter(transport="inet"))
