"""The ``milterfilters config`` command, and the ``--config`` option every command shares."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from milterfilters.config.discovery import CONFIG_ENV, SYSTEM_CONFIG, discover_config
from milterfilters.config.render import render_config
from milterfilters.config.verify import verify_config


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--config/-c FILE`` to a command."""
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"TOML configuration (default: ${CONFIG_ENV}, else {SYSTEM_CONFIG} if it exists, else embedded)",
    )


def quiet_when_pipe_closes(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap a command that prints: when the reader goes away (``milterfilters config | head``)
    it ends quietly with status 0 instead of a ``BrokenPipeError`` traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            status = command(args)
            sys.stdout.flush()
        except BrokenPipeError:
            # Python flushes stdout again at exit; point it at /dev/null so that fails quietly too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0
        return status

    return run


def cmd_config(args: argparse.Namespace) -> int:
    config = discover_config(args.config)
    if args.check:
        filters = verify_config(config)
        print(f"configuration OK: {config.source} (filters: {', '.join(filters) or 'none'})")
        return 0
    print(render_config(config))
    return 0


def register(subparsers: Any) -> None:
    """Add ``config`` to the command line."""
    p = subparsers.add_parser("config", help="print the effective configuration with every default")
    add_config_arg(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="load everything the milter would (filters, model, keys, socket group and directory, "
        "DNS settings); exit 0, or 2 with one line naming file, key and problem",
    )
    p.set_defaults(func=quiet_when_pipe_closes(cmd_config))
