"""What a configuration builds: the services its filters share, and each filter.

Here rather than in :mod:`milterfilters.api` so that ``milterfilters config --check``
(:mod:`milterfilters.config.verify`) loads exactly what the chain loads, with the same
error messages; ``api`` assembles these into a :class:`~milterfilters.core.chain.Chain`.
"""

from __future__ import annotations

from dataclasses import replace

from milterfilters.config.loader import Config, FilterSpec
from milterfilters.config.sections import DnsSection
from milterfilters.core.filter import Filter
from milterfilters.core.metrics import Metrics
from milterfilters.core.schema import ConfigError
from milterfilters.core.services import IPNetwork, Services
from milterfilters.dns import Resolver
from milterfilters.mail.networks import NetworkSet


def make_resolver(dns: DnsSection, metrics: Metrics | None = None) -> Resolver:
    """The resolver ``[dns]`` describes, counting into ``metrics``."""
    return Resolver(
        dns.nameservers,
        timeout=dns.timeout,
        cache_size=dns.cache_size,
        lookup_budget=dns.lookup_budget,
        metrics=metrics,
    )


def relay_trusted_networks(config: Config) -> tuple[IPNetwork, ...]:
    """The enabled relay filter's ``trusted_networks`` (none when it is off or absent)."""
    try:
        relay = config.filter("relay")
    except KeyError:
        return ()
    if not relay.settings.enabled:
        return ()
    return NetworkSet(getattr(relay.options, "trusted_networks", ())).networks


def default_services(config: Config, services: Services | None = None) -> Services:
    """What the filters of ``config`` share, resolved once: the trusted networks, the
    authserv-id, the configuration's file name, and (from ``services`` when given, else new)
    metrics, clock and the DNS resolver ``[dns]`` describes."""
    base = services or Services()
    resolver_factory = base.resolver_factory
    if resolver_factory is None:
        metrics = base.metrics

        def resolver_factory() -> Resolver:
            return make_resolver(config.dns, metrics)

    return replace(
        base,
        resolver_factory=resolver_factory,
        trusted_networks=relay_trusted_networks(config),
        authserv_id=config.milter.effective_authserv_id,
        config_source=config.source,
    )


def make_filter(spec: FilterSpec, services: Services, config: Config) -> Filter:
    """Build one filter; a failure (missing model, unreadable key file) is a configuration
    error naming the configuration file and the filter's section."""
    try:
        return spec.cls(spec.options, services)
    except ConfigError as e:
        key = e.key if e.key.startswith(spec.name) else spec.name
        detail = f"{e.source}: {e.message}" if e.source and e.source != config.source else e.message
        raise ConfigError(detail, source=config.source, key=key) from e
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot start this filter: {e}", source=config.source, key=spec.name) from e
