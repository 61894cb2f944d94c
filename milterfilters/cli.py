"""The ``milterfilters`` command: only wiring. Each command lives in its package and adds
itself with ``register(subparsers)``; the parser it adds sets ``func`` to a callable taking
the parsed args and returning an exit status.

Exit status: 0 when a decision was made (whatever it was); 2 for usage, configuration or
I/O errors, each with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

from milterfilters.core.errors import ConfigError, UsageError

#: modules that add subcommands, in the order ``--help`` lists them; imported on demand
#: so that a command does not load what another needs (scikit-learn, pymilter)
COMMAND_MODULES: tuple[str, ...] = (
    "milterfilters.milter.commands",  # run
    "milterfilters.check",  # check
    "milterfilters.config.commands",  # config
    "milterfilters.auth.keygen",  # dkim-keygen
    "milterfilters.classifier.commands",  # train, evaluate
)


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml takes it from ``milterfilters.__version__``)."""
    try:
        return importlib.metadata.version("milterfilters")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every package's commands registered."""
    parser = argparse.ArgumentParser(
        prog="milterfilters",
        description="A milter that protects mail servers from spam and relay abuse.",
    )
    parser.add_argument("--version", action="version", version=f"milterfilters {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"milterfilters: configuration error: {e}", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"milterfilters: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
