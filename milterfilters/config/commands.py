"""The ``milterfilters config`` command, and the ``--config`` option every command shares."""

from __future__ import annotations

import argparse
from typing import Any

from milterfilters.config.loader import load_config
from milterfilters.config.render import render_config


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--config/-c FILE`` to a command."""
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (default: embedded)")


def cmd_config(args: argparse.Namespace) -> int:
    print(render_config(load_config(args.config)))
    return 0


def register(subparsers: Any) -> None:
    """Add ``config`` to the command line."""
    p = subparsers.add_parser("config", help="print the effective configuration with every default")
    add_config_arg(p)
    p.set_defaults(func=cmd_config)
