#!/usr/bin/env python3
"""Throughput of a real Postfix on loopback with and without milterfilters in front of it.

Sends N messages serially (one SMTP session each, as most clients do) to a private Postfix
with no milter (the baseline), then with milterfilters on a unix socket and on TCP, and prints
ms/message and the ratio to the baseline, all measured in the same run.

    .venv/bin/python benchmarks/bench_mta.py [-n 300] [--config FILE]

Needs what the end-to-end tests need (scripts/install-test-deps.sh, root).
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.mta import StackPool, make_message, make_runtime_dir


def send_serially(port: int, n: int) -> list[float]:
    """Seconds per message for ``n`` messages, one SMTP session each."""
    times = []
    for i in range(n):
        msg = make_message(
            f"bench {i}",
            body="Hello, this is a benchmark message.\r\n" * 20,
            sender="bench@client.example",
            to="user@test.example",
            message_id=f"<bench-{time.time_ns()}@client.example>",
        )
        start = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            s.sendmail("bench@client.example", ["user@test.example"], msg)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="messages per configuration")
    parser.add_argument("--config", help="milterfilters TOML for the milter runs (default: embedded)")
    args = parser.parse_args()
    config = Path(args.config).read_text() if args.config else ""
    runtime = make_runtime_dir()
    pool = StackPool(runtime)
    rows = []
    try:
        setups = [
            ("postfix alone", dict(main_cf={"smtpd_milters": ""})),
            ("postfix + milterfilters (unix)", dict(transport="unix")),
            ("postfix + milterfilters (inet)", dict(transport="inet")),
        ]
        for label, kwargs in setups:
            stack = pool.postfix(config, private=True, **kwargs)  # type: ignore[arg-type]
            send_serially(stack.mta.port, 10)  # warm up
            times = send_serially(stack.mta.port, args.n)
            rows.append(
                (
                    label,
                    statistics.mean(times) * 1000,
                    statistics.median(times) * 1000,
                    sorted(times)[int(len(times) * 0.95)] * 1000,
                )
            )
    finally:
        pool.close()
    base = rows[0][1]
    print(f"{'setup':<34} {'mean ms':>8} {'median':>8} {'p95':>8} {'ratio':>7}")
    for label, mean, median, p95 in rows:
        print(f"{label:<34} {mean:8.2f} {median:8.2f} {p95:8.2f} {mean / base:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
