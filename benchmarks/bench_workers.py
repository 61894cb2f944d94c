#!/usr/bin/env python3
"""Milter throughput with 1, 2 (and N) workers on one socket, driven by a milter-protocol load
generator (no MTA), and the RSS of each worker.

    .venv/bin/python benchmarks/bench_workers.py [-n 600] [--clients 4] [--workers 1,2] [--corpus]

For each worker count it starts ``milterfilters run`` (default chain, ``[milter] workers = K``)
on a private unix socket, warms it up, then sends ``-n`` messages, one milter session each,
from ``--clients`` processes (processes, not threads: the generator must not be held by one
GIL), and prints msg/s, the ratio to one worker, and each worker's RSS after the run.
Messages are generated (varied text) unless ``--corpus`` reads the project's corpus.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.milterclient import MilterClient

Message = tuple[list[tuple[str, str]], str]

WORDS = "offer meeting invoice free winner report schedule click account project update money".split()


def generated(n: int) -> list[Message]:
    """``n`` small text messages with varied words."""
    out = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(60))
        headers = [("From", f"s{i}@client.example"), ("To", "u@test.example"), ("Subject", f"bench {i}")]
        out.append((headers, (words + "\r\n") * 10))
    return out


def from_corpus(n: int) -> list[Message]:
    """The first ``n`` corpus messages, split into unfolded headers and a body."""
    from benchmarks.corpus import load_all

    out = []
    for mail in load_all()[:n]:
        text = mail.raw.decode("latin-1").replace("\r\n", "\n")
        head, _, body = text.partition("\n\n")
        unfolded = re.sub(r"\n[ \t]+", " ", head)
        headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in unfolded.split("\n")) if v]
        out.append((headers[:40], body.replace("\n", "\r\n")[:200_000]))
    return out


def _send(job: tuple[str, list[Message]]) -> int:
    path, messages = job
    for headers, body in messages:
        client = MilterClient(path)
        try:
            client.start()
            client.envelope("a@client.example", ["u@test.example"])
            client.message(headers, body)
        finally:
            client.close()
    return len(messages)


def drive(path: str, messages: list[Message], clients: int) -> float:
    """Messages per second for ``messages`` sent from ``clients`` processes."""
    jobs = [(path, messages[i::clients]) for i in range(clients)]
    with Pool(clients) as pool:
        pool.map(_send, [(path, m[:2]) for _, m in jobs])  # warm the pool processes
        start = time.perf_counter()
        sent = sum(pool.map(_send, jobs))
        return sent / (time.perf_counter() - start)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_with(workers: int, messages: list[Message], clients: int) -> tuple[float, list[float]]:
    """msg/s and the workers' RSS (MB) with ``workers`` workers."""
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as d:
        sock, config, log = Path(d, "m.sock"), Path(d, "m.toml"), Path(d, "m.log")
        config.write_text(f'[milter]\nworkers = {workers}\n[logging]\nlevel = "warning"\n')
        command = [
            sys.executable,
            "-m",
            "milterfilters.cli",
            "run",
            "-c",
            str(config),
            "--socket",
            f"unix:{sock}",
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            deadline = time.monotonic() + 60
            while not (sock.exists() and len(children.read_text().split()) == workers):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"milter did not start:\n{log.read_text()}")
                time.sleep(0.1)
            _send((str(sock), messages[: 5 * workers]))  # warm up (model loaded, caches)
            rate = drive(str(sock), messages, clients)
            pids = [int(p) for p in children.read_text().split()]
            return rate, [rss_mb(pid) for pid in pids]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=600, help="messages per worker count")
    parser.add_argument("--clients", type=int, default=4, help="load-generating processes")
    cpus = os.cpu_count() or 1
    default_counts = "1,2" if cpus <= 2 else f"1,2,{cpus}"
    parser.add_argument("--workers", default=default_counts, help="worker counts, comma-separated")
    parser.add_argument("--corpus", action="store_true", help="corpus messages instead of generated ones")
    args = parser.parse_args()
    messages = from_corpus(args.n) if args.corpus else generated(args.n)
    print(f"{len(messages)} messages, {args.clients} client processes, {cpus} CPUs, load {os.getloadavg()}")
    print(f"{'workers':>7} {'msg/s':>8} {'ratio':>6}  RSS per worker (MB)")
    base = None
    for count in (int(c) for c in args.workers.split(",")):
        rate, rss = run_with(count, messages, args.clients)
        base = base or rate
        print(f"{count:>7} {rate:8.1f} {rate / base:6.2f}  {' '.join(f'{r:.0f}' for r in rss)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
