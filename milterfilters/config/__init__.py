"""Configuration: TOML validated into typed objects at start-up.

Modules:

* ``sections``   — the configuration's own sections: ``[milter]``, ``[dns]``, ``[actions]``, ``[logging]``,
  ``[metrics]``
* ``loader``     — :class:`Config`, :func:`load_config` (a TOML file) and :func:`config_from_dict`
* ``embedded``   — the embedded default (relay, SPF, DKIM, DMARC scoring, GTUBE, size, classifier)
* ``discovery``  — which file the commands load: --config, $MILTERFILTERS_CONFIG, /etc, embedded
* ``instantiate`` — what a configuration builds: the shared services (resolver) and each filter
* ``verify``     — ``config --check``: load everything the milter would (filters, socket, DNS)
* ``registry``   — where filter classes come from: built-ins and the ``milterfilters.filters`` entry points
* ``render``     — ``milterfilters config``: the effective configuration as commented TOML
* ``socketspec`` — the ``[milter] socket`` setting (``unix:/path``, ``inet:HOST:PORT``)
* ``commands``   — the ``config`` command, and the ``--config`` option every command shares
"""

from milterfilters.config.loader import Config, FilterSpec, config_from_dict, load_config
from milterfilters.config.render import render_config
from milterfilters.config.sections import ActionsSection, DnsSection, LoggingSection, MilterSection

__all__ = [
    "ActionsSection",
    "Config",
    "DnsSection",
    "FilterSpec",
    "LoggingSection",
    "MilterSection",
    "config_from_dict",
    "load_config",
    "render_config",
]
