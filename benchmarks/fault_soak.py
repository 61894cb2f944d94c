#!/usr/bin/env python3
"""No mail lost under faults, at length: a private Postfix + milterfilters (unix socket,
``milter_default_action = tempfail``), client threads sending uniquely identified messages
and retrying each after a 4xx like an MTA queue, while the libmilter worker is SIGKILLed,
the milter is stopped, crashed and restarted, reloaded with SIGHUP, its DNS goes silent and
its SPF filter fails on some messages (a loopback DNS server that sometimes does not
answer). At the end every Message-ID is checked against the Maildir.

    .venv/bin/python benchmarks/fault_soak.py [-n 2000] [--clients 6] [--cycles 6] [--pause 3]

Every 5th message is a hostile shape (tests/support/hostile.py: a 126 KB header field, a
quoted local part holding ``@``, 8-bit garbage headers, deep MIME, a NUL byte, bare LF line
ends), which must be delivered or refused with a reason like any other.

Prints the figures; exits 1 if a message was lost or duplicated, clean mail was refused with a
5xx, a refusal came without a reason, or a hostile message never got a decision.
Needs what the end-to-end tests need (scripts/install-test-deps.sh, root).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.mta import StackPool, make_runtime_dir
from tests.e2e.soak import DEFAULT_FAULTS, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=2000, help="messages to send at least")
    parser.add_argument("--clients", type=int, default=6, help="client threads")
    parser.add_argument("--cycles", type=int, default=6, help="times the whole list of faults is run")
    parser.add_argument("--pause", type=float, default=3.0, help="mean seconds between two faults")
    parser.add_argument("--max-tries", type=int, default=60, help="attempts per message before giving up")
    parser.add_argument("--retry-delay", type=float, default=0.5, help="seconds to wait after a 4xx")
    parser.add_argument("--flaky-rate", type=float, default=0.3, help="share of unanswered flaky DNS queries")
    parser.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help="comma-separated fault cycle (worker-kill, reload, dns-outage, milter-restart, milter-crash)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the runtime folder (logs)")
    args = parser.parse_args()
    runtime = make_runtime_dir()
    pool = StackPool(runtime)
    try:
        result = run_soak(
            pool,
            messages=args.messages,
            clients=args.clients,
            fault_pause=args.pause,
            fault_cycles=args.cycles,
            max_tries=args.max_tries,
            retry_delay=args.retry_delay,
            flaky_rate=args.flaky_rate,
            seed=args.seed,
            faults=args.faults.split(","),
        )
    finally:
        pool.close()
    print("\n".join(result.lines()))
    ledger = result.ledger
    for letter in ledger.held:
        print(f"held: {letter.message_id} after {letter.attempts} attempts")
    failed = (
        ledger.lost
        or ledger.duplicated
        or ledger.rejected_clean
        or ledger.rejected_without_reason
        or any(x.kind != "clean" for x in ledger.held)  # a hostile shape tempfailed every time
        or ledger.strangers
    )
    if args.keep or failed:
        print(f"runtime folder (logs): {runtime}")
    else:
        shutil.rmtree(runtime, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
