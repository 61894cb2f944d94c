"""The ``milterfilters`` command: run, check, config (and the commands other modules add).

Exit status: 0 when a decision was made (whatever it was); 2 for usage, configuration or
I/O errors, each with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from milterfilters.schema import ConfigError

if TYPE_CHECKING:
    from milterfilters.chain import Chain

#: modules that add subcommands: each has ``register(subparsers)``; the parser it adds
#: sets ``func`` to a callable taking the parsed args and returning an exit status.
COMMAND_MODULES: tuple[str, ...] = ("milterfilters.dkim_keys", "milterfilters.classifier.commands")


class UsageError(Exception):
    """A problem with what the user asked for (bad file, bad option value)."""


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (default: embedded)")


def _setup_logging(level: str = "info", stream: object = None) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s",
        stream=stream or sys.stderr,  # type: ignore[arg-type]
    )


def _read_message(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read message {path}: {e.strerror}") from e


def cmd_check(args: argparse.Namespace) -> int:
    from milterfilters.api import build_chain, evaluate
    from milterfilters.config import load_config

    config = load_config(args.config)
    _setup_logging("debug" if args.verbose else "warning")
    raw = _read_message(args.message)
    chain = build_chain(config)
    outcome = evaluate(
        chain,
        raw,
        client_ip=args.client_ip,
        client_name=args.client_name,
        helo=args.helo,
        auth_user=args.auth_user,
        mail_from=args.mail_from,
        recipients=args.rcpt or (),
    )
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2, ensure_ascii=False))
        return 0
    d = outcome.decision
    print(f"action: {d.action.label} (at {outcome.stage.value})")
    if d.reply:
        print(f"reply: {d.reply}")
    print(f"score: {d.score:.2f}")
    for f in d.findings:
        print(f"  {f.finding.symbol:<28} {f.score:>8.2f}  {f.finding.detail}")
    for f in d.dry_run_findings:
        print(f"  (dry run) {f.finding.symbol:<18} {f.score:>8.2f}  {f.finding.detail}")
    for r in outcome.recipients:
        rd = r.as_dict()
        reply = f" {r.decision.reply}" if rd["reply"] else ""
        print(f"recipient {r.address}: {rd['action']}{reply}")
    for h in d.added_headers:
        print(f"header: {h.name}: {h.value}")
    if d.subject_prefix:
        print(f"subject prefix: {d.subject_prefix}")
    for e in d.errors:
        print(f"error: {e}")
    if args.explain:
        _print_explanations(chain, raw)
    return 0


def _print_explanations(chain: Chain, raw: bytes) -> None:
    """Print what filters offering ``explain(message)`` say drove their findings."""
    from milterfilters.message import parse_message

    message = parse_message(raw)
    for link in chain.links:
        explain = getattr(link.filter, "explain", None)
        if explain is None:
            continue
        print(f"{link.name}: tokens that drove the score (+ towards spam, - towards ham)")
        for item in explain(message):
            print(f"  {item.contribution:+8.3f}  {item.token}")


def cmd_config(args: argparse.Namespace) -> int:
    from milterfilters.config import load_config, render_config

    print(render_config(load_config(args.config)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from milterfilters.milter.server import run

    return run(args.config, socket_override=args.socket)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milterfilters",
        description="A milter that protects mail servers from spam and relay abuse.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the milter in the foreground")
    _add_config_arg(p)
    p.add_argument("--socket", "-s", metavar="SPEC", help="override [milter] socket")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="run the filter chain on one message, offline")
    _add_config_arg(p)
    p.add_argument("--client-ip", metavar="IP", help="client address (default 127.0.0.1)")
    p.add_argument("--client-name", metavar="NAME", help="client host name")
    p.add_argument("--helo", metavar="NAME", help="HELO/EHLO name")
    p.add_argument("--auth-user", metavar="USER", help="SASL login of the client")
    p.add_argument(
        "--mail-from",
        metavar="ADDR",
        help="envelope sender; '' or '<>' is the null sender (default: the message's Return-Path or From)",
    )
    p.add_argument("--rcpt", metavar="ADDR", action="append", help="envelope recipient (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", "-v", action="store_true", help="log filter details to stderr")
    p.add_argument("--explain", action="store_true", help="show which tokens drove the classifier's score")
    p.add_argument("message", nargs="?", default="-", metavar="MESSAGE", help="file, or - for stdin")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("config", help="print the effective configuration with every default")
    _add_config_arg(p)
    p.set_defaults(func=cmd_config)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
    # run the imported module's main, so exception classes are the ones command modules import
    from milterfilters.cli import main as _main

    sys.exit(_main())
