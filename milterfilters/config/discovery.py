"""Where the configuration comes from, for ``run``, ``check`` and ``config`` alike.

In order: ``--config FILE``; else ``$MILTERFILTERS_CONFIG``; else
``/etc/milterfilters/milterfilters.toml`` when it exists; else the embedded default
(:mod:`milterfilters.config.embedded`). A file named explicitly (option or variable) must
exist; the system file is taken only when it does. The library (``load_config(None)``,
``build_chain()``) never looks: there ``None`` is the embedded default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from milterfilters.config.embedded import EMBEDDED_SOURCE
from milterfilters.config.loader import Config, load_config

#: the environment variable naming the configuration file when ``--config`` is not given
CONFIG_ENV = "MILTERFILTERS_CONFIG"
#: the configuration file used, when it exists, if neither ``--config`` nor the variable names one
SYSTEM_CONFIG = Path("/etc/milterfilters/milterfilters.toml")


@dataclass(frozen=True)
class ConfigOrigin:
    """Which configuration a command runs, and why: ``path`` is ``None`` for the embedded default."""

    path: str | None
    reason: str

    def describe(self) -> str:
        """For the start-up log: ``/etc/x.toml (from $MILTERFILTERS_CONFIG)``."""
        return f"{self.path or EMBEDDED_SOURCE} ({self.reason})"


def find_config(
    option: str | None,
    environ: Mapping[str, str] | None = None,
    system_file: Path | None = None,
) -> ConfigOrigin:
    """Which configuration file to load: the option, the variable, the system file, or none."""
    env = os.environ if environ is None else environ
    system = SYSTEM_CONFIG if system_file is None else system_file
    if option:
        return ConfigOrigin(option, "from --config")
    if env.get(CONFIG_ENV):
        return ConfigOrigin(env[CONFIG_ENV], f"from ${CONFIG_ENV}")
    if system.is_file():
        return ConfigOrigin(str(system), "the system configuration file")
    return ConfigOrigin(None, f"no --config, no ${CONFIG_ENV}, no {system}")


def discover_config(option: str | None) -> Config:
    """Load the configuration :func:`find_config` names (the embedded default when none)."""
    return load_config(find_config(option).path)
