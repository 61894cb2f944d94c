"""The embedded default configuration with its DNS pointed at loopback, for tests.

The embedded default asks the system resolver; no test may (this machine's is a private
address). Tests that build the default chain use :func:`default_config` (in process) or
the file :func:`write_default_config` writes (subprocesses, through ``$MILTERFILTERS_CONFIG``,
which ``tests/conftest.py`` sets for the whole session): the embedded default rendered by
``milterfilters config`` with only ``[dns] nameservers`` changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from milterfilters.config import Config, load_config, render_config

#: a loopback port where nothing answers DNS (the discard port): queries fail at once
DEAD_NAMESERVER = "127.0.0.1:9"


def default_config(nameservers: Sequence[str] = (DEAD_NAMESERVER,), timeout: float = 5.0) -> Config:
    """The embedded default, its resolver on ``nameservers`` (loopback) instead of the system's."""
    config = load_config(None)
    return replace(config, dns=replace(config.dns, nameservers=tuple(nameservers), timeout=timeout))


def write_default_config(path: Path, nameservers: Sequence[str] = (DEAD_NAMESERVER,)) -> Path:
    """Write :func:`default_config` as a TOML file (what ``milterfilters config`` prints)."""
    path.write_text(render_config(default_config(nameservers)))
    return path


__all__ = ["DEAD_NAMESERVER", "default_config", "write_default_config"]
