"""The opening the verifying filters share: our own outbound mail is not theirs to judge.

Mail from a SASL-authenticated client or a trusted network is ours going out (a user
submitting from home fails SPF for their own domain, and is not signed yet); DKIM and DMARC
verification skip it unless the filter's ``check_outbound`` option is set.
"""

from __future__ import annotations

from typing import Any

from milterfilters.core.context import Context
from milterfilters.core.filter import Filter
from milterfilters.core.services import Services
from milterfilters.mail.outbound import is_outbound, trusted_networks


class InboundFilter(Filter):
    """Base of the filters that verify inbound mail; their ``Options`` have ``check_outbound``."""

    def __init__(self, options: Any, services: Services) -> None:
        super().__init__(options, services)
        self.trusted_networks = trusted_networks(services, ())

    def skips(self, ctx: Context) -> bool:
        """Whether this message is our own outbound mail, which this filter leaves alone."""
        return not self.options.check_outbound and is_outbound(ctx, self.trusted_networks)
