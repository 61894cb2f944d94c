"""Chains for the message-authentication tests: SPF, DKIM, DMARC and friends resolving
through the loopback DNS test server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from milterfilters.api import build_chain, default_services
from milterfilters.config import config_from_dict
from milterfilters.core.chain import Chain
from tests.support.dnsserver import DnsTestServer

AUTHSERV_ID = "mx.test.example"


def auth_chain(
    dns: DnsTestServer,
    sections: Mapping[str, Any],
    *,
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
    return build_chain(config, services=services)


def authentication_results(decision_headers: Any) -> str:
    """The value of the Authentication-Results field the chain added ("" if none)."""
    for h in decision_headers:
        if getattr(h, "name", "") == "Authentication-Results" and hasattr(h, "value"):
            return str(h.value)
    return ""
