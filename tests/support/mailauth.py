"""Chains for the message-authentication tests: DKIM, DMARC and friends on a loopback DNS.

``SpfResults`` stands in for the SPF filter where a test needs a given SPF outcome: it
reports exactly what the SPF filter reports (``spf=RESULT smtp.mailfrom=ADDRESS``) at MAIL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from milterfilters.api import build_chain, default_services
from milterfilters.chain import Chain, ChainLink
from milterfilters.config import config_from_dict
from milterfilters.context import Context
from milterfilters.filters.base import Filter
from milterfilters.verdict import AuthResult, Verdict
from tests.support.dnsserver import DnsTestServer

AUTHSERV_ID = "mx.test.example"


class SpfResults(Filter):
    """Reports an SPF result per MAIL FROM domain from a table (default ``none``)."""

    name = "spf_results"
    symbols: ClassVar[dict[str, float]] = {}

    def __init__(self, results: Mapping[str, str]) -> None:
        super().__init__(None, None)  # type: ignore[arg-type]
        self.results = dict(results)

    def mail(self, ctx: Context) -> Verdict | None:
        assert ctx.envelope is not None
        sender = ctx.envelope.mail_from
        result = self.results.get(sender.rpartition("@")[2].lower(), "none")
        return Verdict(auth_results=(AuthResult("spf", result, (("smtp.mailfrom", sender),)),))


def auth_chain(
    dns: DnsTestServer,
    sections: Mapping[str, Any],
    *,
    spf: Mapping[str, str] | None = None,
    clock: Callable[[], float] | None = None,
) -> Chain:
    """A chain from ``sections`` (TOML as dicts) resolving through ``dns``.

    Filters named in ``sections`` are enabled unless the section says otherwise.
    """
    data: dict[str, Any] = {
        "milter": {"authserv_id": AUTHSERV_ID},
        "dns": {"nameservers": [dns.address], "timeout": 2.0},
    }
    for name, section in sections.items():
        data[name] = {"enabled": True, **section} if name not in ("scores", "actions") else dict(section)
    config = config_from_dict(data)
    services = default_services(config)
    if clock is not None:
        services.clock = clock
    chain = build_chain(config, services=services)
    if spf is None:
        return chain
    return Chain(
        (ChainLink(SpfResults(spf)), *chain.links),
        chain.policy,
        authserv_id=chain.authserv_id,
        status_headers=chain.status_headers,
        metrics=chain.metrics,
    )


def authentication_results(decision_headers: Any) -> str:
    """The value of the Authentication-Results field the chain added ("" if none)."""
    for h in decision_headers:
        if getattr(h, "name", "") == "Authentication-Results" and hasattr(h, "value"):
            return str(h.value)
    return ""
