"""The ``milterfilters run`` command: the milter in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from milterfilters.config.commands import add_config_arg


def cmd_run(args: argparse.Namespace) -> int:
    from milterfilters.milter.server import run

    return run(args.config, socket_override=args.socket)


def register(subparsers: Any) -> None:
    """Add ``run`` to the command line."""
    p = subparsers.add_parser("run", help="run the milter in the foreground")
    add_config_arg(p)
    p.add_argument("--socket", "-s", metavar="SPEC", help="override [milter] socket")
    p.set_defaults(func=cmd_run)
