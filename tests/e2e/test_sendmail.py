"""The milter behind a real Sendmail (unpacked from its Debian packages), queue-only delivery."""

from __future__ import annotations

import pytest

from . import scenarios
from .mta import MailStack

pytestmark = pytest.mark.e2e


def test_sasl_auth_plain_login_and_client_address_reach_the_milter(sendmail_stack: MailStack) -> None:
    # Sendmail has no XCLIENT: connect from another loopback address instead
    scenarios.sasl_login_and_client_address_reach_the_milter(
        sendmail_stack, source_address="127.0.0.7", client="unknown[127.0.0.7]"
    )
