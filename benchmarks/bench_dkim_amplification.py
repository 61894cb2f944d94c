#!/usr/bin/env python3
"""DKIM CPU amplification through a real milter worker: one connection sends a 10 MB body
under 10 valid DKIM signatures (RSA-2048 and Ed25519, simple and relaxed, half with ``l=``)
while another sends small messages.

    .venv/bin/python benchmarks/bench_dkim_amplification.py [--small 200] [--big 3] [--mb 10]

The milter (``milterfilters run``, default chain plus ``[dkim]``) resolves keys through the
loopback DNS test server in a child process; the MTA side is ``tests/support/milterclient.py``
over the unix socket, the attacker in a process of its own (so neither shares a GIL with the
other). Prints, for the big message, the worker's CPU seconds and the wall time from end of
data to the decision (target: within the dkim filter's ``timeout``), and the small messages'
p50/p99 latency (connect to decision) idle and under attack, with the ratio (target: p99 < 2x).
``--without-dkim`` runs the same traffic with the dkim filter off: the floor that moving 10 MB
through the milter costs on its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import dkim

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_full_chain import start_dns
from miltertest import constants as C

from milterfilters.auth.dkim_keys import generate_key
from tests.e2e.milter import MilterProcess
from tests.support.dnsserver import Zone
from tests.support.milterclient import MilterClient, added_headers, final_action

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HEAD = "From: Alice <alice@example.com>\r\nTo: bob@test.example\r\nSubject: quarterly report\r\n"
LINE = "A line of the quarterly report, with  some\tblanks, about seventy characters.\r\n"


def attack_message(megabytes: float) -> tuple[str, Zone]:
    """The signed message (text, CRLF) and the zone with its keys."""
    rsa, ed = generate_key("rsa", 2048)[1], generate_key("ed25519")[1]
    zone = Zone({"rsa._domainkey.example.com": [("TXT", rsa.public_record)],
                 "ed._domainkey.example.com": [("TXT", ed.public_record)]})  # fmt: skip
    body = LINE * int(megabytes * 1_000_000 / len(LINE))
    message = (HEAD + "\r\n" + body).encode()
    for i in range(10):
        selector, key, algorithm = (b"rsa", rsa, b"rsa-sha256") if i % 2 else (b"ed", ed, b"ed25519-sha256")
        canonicalize = (b"relaxed", b"relaxed" if i % 4 < 2 else b"simple")
        signature = dkim.sign(
            message, selector, b"example.com", key.dkimpy_key,
            signature_algorithm=algorithm, canonicalize=canonicalize, length=i < 5,
        )  # fmt: skip
        message = signature + message
    return message.decode(), zone


def header_fields(message: str) -> tuple[list[tuple[str, str]], str]:
    head, body = message.split("\r\n\r\n", 1)
    fields: list[tuple[str, str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            fields[-1] = (fields[-1][0], fields[-1][1] + "\r\n" + line)
        else:
            name, value = line.split(":", 1)
            fields.append((name, value.lstrip(" ")))
    return fields, body


def converse(socket: str, message: str) -> tuple[float, float, list[Any]]:
    """One milter conversation; (seconds in all, seconds from end of data to the decision, replies)."""
    fields, body = header_fields(message)
    start = time.perf_counter()
    client = MilterClient(socket)
    try:
        client.start()
        client.envelope("alice@example.com", ["bob@test.example"])
        for name, value in fields:
            client._step(C.SMFIC_HEADER, name=name, value=value)
        client._step(C.SMFIC_EOH)
        for i in range(0, len(body), C.MILTER_CHUNK_SIZE):
            client._step(C.SMFIC_BODY, buf=body[i : i + C.MILTER_CHUNK_SIZE])
        eom = time.perf_counter()
        replies = client.conn.send_eom()
    finally:
        client.close()
    end = time.perf_counter()
    return end - start, end - eom, replies


def small_latencies(socket: str, n: int) -> list[float]:
    message = HEAD + "\r\nHello Bob,\r\n\r\nsee you at noon.\r\n"
    return [converse(socket, message)[0] for _ in range(n)]


def _attacker(socket: str, message: str, started: Event, stop: Event) -> None:
    started.set()
    while not stop.is_set():
        converse(socket, message)


def worker_cpu(milter: MilterProcess) -> float:
    total = 0
    for pid in milter.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200, help="small messages per phase")
    parser.add_argument("--big", type=int, default=3, help="big messages measured alone")
    parser.add_argument("--mb", type=float, default=10.0, help="body size of the big message, MB")
    parser.add_argument(
        "--without-dkim", action="store_true", help="baseline: the same traffic with the dkim filter off"
    )
    parser.add_argument(
        "--milter",
        help="the milterfilters command to run (default: this checkout's); run from outside any "
        "checkout then, or its worker (python -m) imports the package of the current directory",
    )
    args = parser.parse_args()
    print(f"signing a {args.mb:g} MB body 10 times (dkimpy)...", flush=True)
    message, zone = attack_message(args.mb)
    dns_process, dns = start_dns(zone)
    dkim_on = str(not args.without_dkim).lower()
    config = (
        f'[milter]\nauthserv_id = "mx.test.example"\n[dns]\nnameservers = ["{dns}"]\n'
        f"[dkim]\nenabled = {dkim_on}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        milter = MilterProcess(Path(tmp) / "milter", config, command=[args.milter] if args.milter else None)
        milter.start()
        socket = str(milter.socket_path)
        try:
            small_latencies(socket, 20)  # warm up: imports, model, DNS cache
            converse(socket, message)
            print(f"\nbig message: {len(message) / 1e6:.1f} MB, 10 signatures (5 with l=)")
            for _ in range(args.big):
                cpu = worker_cpu(milter)
                total, decide, replies = converse(socket, message)
                cpu = worker_cpu(milter) - cpu
                dkim_results = added_headers(replies).get("Authentication-Results", "").count("dkim=pass")
                print(f"  worker CPU {cpu:6.2f} s   end of data -> decision {decide:6.2f} s   "
                      f"whole conversation {total:6.2f} s   {final_action(replies)}, "
                      f"{dkim_results} x dkim=pass   (dkim timeout 10 s)")  # fmt: skip
            idle = small_latencies(socket, args.small)
            ctx = multiprocessing.get_context("fork")
            started, stop = ctx.Event(), ctx.Event()
            attacker = ctx.Process(target=_attacker, args=(socket, message, started, stop), daemon=True)
            attacker.start()
            started.wait()
            time.sleep(0.5)
            attacked = small_latencies(socket, args.small)
            stop.set()
            attacker.join(60)
        finally:
            milter.stop()
            dns_process.terminate()
    print(f"\nsmall messages, {args.small} per phase (connect to decision, ms):")
    for label, values in (("idle", idle), ("under attack", attacked)):
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        print(f"  {label:<13} p50 {p50:7.2f}   p99 {p99:7.2f}")
    ratio = percentile(attacked, 99) / percentile(idle, 99)
    print(f"  p99 under attack / idle: {ratio:.2f}x (target < 2x)")


if __name__ == "__main__":
    main()
