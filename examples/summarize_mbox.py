#!/usr/bin/env python3
"""Run the milterfilters chain over every message of an mbox file (or a Maildir) and print
a summary: how many messages got each action, and the most frequent symbols.

    .venv/bin/python examples/summarize_mbox.py ~/mail/archive.mbox [--config milterfilters.toml]
"""

from __future__ import annotations

import argparse
import collections
import mailbox
import sys

import milterfilters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mailbox", help="an mbox file or a Maildir folder")
    parser.add_argument("--config", help="TOML configuration (default: embedded)")
    parser.add_argument("--client-ip", default="203.0.113.5", help="client address to assume")
    args = parser.parse_args()

    chain = milterfilters.build_chain(args.config)
    box: mailbox.Mailbox = (
        mailbox.Maildir(args.mailbox, create=False)
        if args.mailbox.endswith("/")
        else mailbox.mbox(args.mailbox)
    )
    actions: collections.Counter[str] = collections.Counter()
    symbols: collections.Counter[str] = collections.Counter()
    for key in box.iterkeys():
        raw = box.get_bytes(key)
        outcome = milterfilters.evaluate(
            chain, raw, client_ip=args.client_ip, recipients=["postmaster@localhost"]
        )
        actions[outcome.action.label] += 1
        symbols.update(outcome.decision.symbols)
    total = sum(actions.values())
    print(f"{total} messages")
    for action, n in actions.most_common():
        print(f"  {action:<10} {n:>7}  {100 * n / max(total, 1):5.1f}%")
    print("most frequent symbols:")
    for symbol, n in symbols.most_common(15):
        print(f"  {symbol:<28} {n:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
