"""The ``milterfilters check`` command: run the filter chain on one message, offline.

The same chain as the milter, through :func:`milterfilters.api.evaluate`; the transaction
(client, HELO, login, envelope) comes from options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from milterfilters.api import build_chain, evaluate
from milterfilters.config.commands import add_config_arg, quiet_when_pipe_closes
from milterfilters.config.discovery import discover_config
from milterfilters.core.chain import Chain
from milterfilters.core.errors import UsageError
from milterfilters.mail.message import parse_message


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
    config = discover_config(args.config)
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
    message = parse_message(raw)
    for link in chain.links:
        explain = getattr(link.filter, "explain", None)
        if explain is None:
            continue
        print(f"{link.name}: tokens that drove the score (+ towards spam, - towards ham)")
        for item in explain(message):
            print(f"  {item.contribution:+8.3f}  {item.token}")


def register(subparsers: Any) -> None:
    """Add ``check`` to the command line."""
    p = subparsers.add_parser("check", help="run the filter chain on one message, offline")
    add_config_arg(p)
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
    p.set_defaults(func=quiet_when_pipe_closes(cmd_check))
