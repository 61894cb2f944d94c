"""``milterfilters config --check``: load everything the milter would, before it matters.

Validation at load (:mod:`milterfilters.config.loader`) sees only the file. This goes on to
what the milter meets when it starts: every enabled filter is built exactly as the chain
builds it (the classifier's model, DKIM signing keys, plugins), the filter order is
checked, the unix socket's group must exist and its directory must be there and writable,
and the DNS settings must give a resolver. The supervisor runs the same check on SIGHUP
before anything is swapped. Each problem is a :class:`ConfigError` naming file and key.
"""

from __future__ import annotations

import grp
import os

from milterfilters.config.instantiate import default_services, make_filter, make_resolver
from milterfilters.config.loader import Config
from milterfilters.config.socketspec import parse_socket_spec
from milterfilters.core.chain import ChainLink, ChainOrderError, check_order
from milterfilters.core.schema import ConfigError
from milterfilters.dns.errors import DnsError


def verify_config(config: Config, *, socket_override: str | None = None) -> list[str]:
    """Check that ``config`` can run; returns the enabled filters' names.

    Raises :class:`ConfigError` (one line: file, key, problem) for the first problem found.
    ``socket_override`` is ``run --socket``'s value, checked instead of ``[milter] socket``.
    """
    _verify_socket(config, socket_override)
    _verify_dns(config)
    return _verify_filters(config)


def _verify_socket(config: Config, socket_override: str | None) -> None:
    key = "milter.socket"
    try:
        spec = parse_socket_spec(socket_override or config.milter.socket)
    except ValueError as e:
        raise ConfigError(str(e), source=config.source, key=key) from None
    if spec.family != "unix":
        return
    group = config.milter.socket_group
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise ConfigError(
                f"group {group!r} does not exist", source=config.source, key="milter.socket_group"
            ) from None
    directory = os.path.dirname(spec.path) or "/"
    if not os.path.isdir(directory):
        raise ConfigError(f"socket directory {directory} does not exist", source=config.source, key=key)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"socket directory {directory} is not writable", source=config.source, key=key)


def _verify_dns(config: Config) -> None:
    try:
        make_resolver(config.dns)
    except (DnsError, ValueError) as e:
        raise ConfigError(str(e), source=config.source, key="dns.nameservers") from None


def _verify_filters(config: Config) -> list[str]:
    services = default_services(config)
    links: list[ChainLink] = []
    try:
        for spec in config.enabled_filters:
            links.append(ChainLink(make_filter(spec, services, config), spec.settings))
        try:
            check_order(links)
        except ChainOrderError as e:
            raise ConfigError(str(e), source=config.source) from None
    finally:
        for link in links:
            link.filter.close()
    return [link.name for link in links]
