#!/usr/bin/env python3
"""End-to-end throughput through a real Postfix: alone, + milterfilters' default chain, + the
full chain, + rspamd's proxy as a milter; persistent sessions and one message per session.

    .venv/bin/python benchmarks/bench_throughput.py            # the README's table (~8 min)
    .venv/bin/python benchmarks/bench_throughput.py --quick    # a short run (~2 min)

Four private Postfix instances run side by side, each with a discard transport (delivery costs
nothing, the queue stays empty), each milter on a unix socket:

  1. Postfix alone;
  2. + milterfilters, the embedded default (relay, SPF with HELO, DKIM, DMARC scoring only,
     A-R forgery, GTUBE, size, classifier), its DNS pointed at the loopback server;
  3. + milterfilters, full chain: relay (local_domains), SPF, DKIM, DMARC with its reject
     policy, classifier, on the same loopback DNS;
  4. + rspamd 3's proxy worker as a milter (Bayes in Redis, network modules off), same DNS.

The messages are ``-n`` rows of the corpus test split (read from ../shared/corpora at run time,
taken evenly across it, some twice if ``-n`` exceeds it; never stored), sent from client address 203.0.113.7
(XCLIENT) whose SPF passes for the envelope sender. Two modes, each by ``--sessions``
concurrent SMTP sessions spread over ``--client-processes`` processes:

  * persistent: ``--per-session`` (10) messages per connection, RSET between them;
  * one message per session (connect, EHLO, XCLIENT, EHLO, MAIL, RCPT, DATA, QUIT).

Every (mode, setup) pass is repeated ``--rounds`` (3) times, the setups alternated within a
round (order reversed every other round) so each round's ratios are measured side by side on
this shared machine; the table gives the median of the rounds' ratios and each round's.
Milter CPU is the user+system time of all the milter's processes over its passes divided by
the messages, and "cores busy" that times the median rate (how much CPU the milter held
while it ran); RSS is each milter process's resident set after the passes (supervisor first for
milterfilters, rspamd's main process first).

Needs root, Postfix, rspamd and redis-server (``apt-get install rspamd redis-server``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_full_chain import (
    CLIENT_IP,
    HELO,
    RECIPIENT,
    Envelope,
    build_messages,
    cpu_seconds,
    descendants,
    full_chain_config,
    pss_mb,
    start_dns,
    stop_all,
    wait_idle,
)
from peers import Peers

from milterfilters.config.embedded import EMBEDDED_DEFAULT_TOML
from tests.e2e.milter import MilterProcess
from tests.e2e.postfix import PostfixInstance
from tests.e2e.runtime import make_runtime_dir

#: every recipient of every domain goes to discard(8): Postfix accepts, queues and drops
DISCARD = {"default_transport": "discard", "relay_transport": "discard", "virtual_transport": "discard"}
MODES = ("persistent", "one per session")
T = TypeVar("T")

# --- the SMTP load ----------------------------------------------------------------------------

#: the messages, set before the client processes fork (they inherit it, nothing is pickled)
_MAILS: list[Envelope] = []


def smtp_session(port: int, batch: Sequence[int]) -> list[int]:
    """One SMTP connection carrying the messages ``batch`` (indices into ``_MAILS``), RSET
    between them; the final reply code of each (a refused message still counts)."""
    codes = []
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo(HELO)
        code, text = s.docmd("XCLIENT", f"ADDR={CLIENT_IP} NAME={HELO}")
        if code != 220:
            raise RuntimeError(f"XCLIENT refused: {code} {text!r}")
        s.ehlo(HELO)
        for n, i in enumerate(batch):
            if n:
                s.rset()
            mail = _MAILS[i]
            try:
                s.sendmail(mail.mail_from, [RECIPIENT], mail.raw)
                codes.append(250)
            except smtplib.SMTPResponseException as e:
                codes.append(e.smtp_code)
            except smtplib.SMTPRecipientsRefused as e:
                codes.append(next(iter(e.recipients.values()))[0])
    return codes


def _client_process(port: int, batches: list[list[int]], threads: int) -> Counter[int]:
    with ThreadPoolExecutor(threads) as pool:
        results = pool.map(lambda b: smtp_session(port, b), batches)
        return Counter(code for codes in results for code in codes)


def batches_of(n: int, per_session: int) -> list[list[int]]:
    """Message indices 0..n-1 cut into consecutive sessions of ``per_session`` messages."""
    return [list(range(i, min(n, i + per_session))) for i in range(0, n, per_session)]


def deal(batches: Sequence[list[int]], hands: int) -> list[list[list[int]]]:
    """``batches`` dealt round-robin into ``hands`` lists (one per client process)."""
    return [list(batches[h::hands]) for h in range(hands)]


def drive(port: int, n: int, per_session: int, sessions: int, processes: int) -> tuple[float, Counter[int]]:
    """Send messages 0..n-1 to ``port``; seconds of wall time and the reply codes."""
    hands = [h for h in deal(batches_of(n, per_session), processes) if h]
    threads = max(1, sessions // len(hands))
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    with context.Pool(len(hands)) as pool:
        counts = pool.starmap(_client_process, [(port, hand, threads) for hand in hands])
    wall = time.perf_counter() - started
    return wall, sum(counts, Counter())


# --- setups and their measurements --------------------------------------------------------------


@dataclass
class Setup:
    """One Postfix (and its milter, if any) and what its passes measured."""

    label: str
    port: int
    milter_pids: Callable[[], list[int]] | None = None
    walls: dict[str, list[float]] = field(default_factory=dict)  # mode -> seconds per round
    cpu: dict[str, float] = field(default_factory=dict)  # mode -> milter CPU seconds, all rounds
    codes: Counter[int] = field(default_factory=Counter)
    rss_mb: list[float] = field(default_factory=list)
    pss_mb: float | None = None

    def cpu_now(self) -> float:
        return cpu_seconds(self.milter_pids()) if self.milter_pids else 0.0

    def run(self, mode: str, args: argparse.Namespace) -> None:
        per_session = args.per_session if mode == "persistent" else 1
        before = self.cpu_now()
        wall, codes = drive(self.port, len(_MAILS), per_session, args.sessions, args.client_processes)
        self.cpu[mode] = self.cpu.get(mode, 0.0) + self.cpu_now() - before
        self.walls.setdefault(mode, []).append(wall)
        self.codes.update(codes)
        rate = len(_MAILS) / wall
        print(f"  {mode:<16} {self.label:<36} {rate:7.1f} msg/s  {dict(codes)}", file=sys.stderr, flush=True)

    def rates(self, mode: str) -> list[float]:
        return [len(_MAILS) / w for w in self.walls[mode]]

    def cpu_ms(self, mode: str) -> float | None:
        if not self.milter_pids:
            return None
        return 1000 * self.cpu[mode] / (len(_MAILS) * len(self.walls[mode]))

    def record_memory(self) -> None:
        if self.milter_pids:
            pids = self.milter_pids()
            self.rss_mb = [rss_mb(pid) for pid in pids]
            self.pss_mb = pss_mb(pids)


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two setups' rates (each pair measured side by side)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def fmt_ratios(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}x ({'/'.join(f'{v:.2f}' for v in values)})"


def print_table(setups: Sequence[Setup], rspamd: Setup | None) -> None:
    alone = setups[0]
    print("| mode | setup | msg/s (median) | x Postfix alone (rounds) | x rspamd (rounds) | "
          "milter CPU ms/msg | milter cores busy | RSS MB per process | PSS MB |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        for s in setups:
            rates = s.rates(mode)
            vs_alone = fmt_ratios(ratios(rates, alone.rates(mode))) if s is not alone else "1"
            vs_rspamd = "-"
            if rspamd is not None and s is not rspamd and s is not alone:
                vs_rspamd = fmt_ratios(ratios(rates, rspamd.rates(mode)))
            cpu = s.cpu_ms(mode)
            print(
                f"| {mode} | {s.label} | {statistics.median(rates):.0f} | {vs_alone} | {vs_rspamd} | "
                f"{'-' if cpu is None else f'{cpu:.2f}'} | "
                f"{'-' if cpu is None else f'{cpu * statistics.median(rates) / 1000:.2f}'} | "
                f"{' + '.join(f'{r:.0f}' for r in s.rss_mb) or '-'} | "
                f"{'-' if s.pss_mb is None else f'{s.pss_mb:.0f}'} |"
            )


def corpus_messages(n: int, synthetic: int) -> tuple[list[Envelope], object]:
    """``n`` test-split messages (spread over the split, see :func:`spread`) and ``synthetic`` DKIM-signed
    or unsigned ones, with the DNS zone that publishes their senders' records."""
    mails, zone = build_messages(sys.maxsize, synthetic)  # the whole split, in archive order
    corpus = [m for m in mails if m.kind in ("ham", "spam")]
    extra = [m for m in mails if m.kind not in ("ham", "spam")]
    return spread(corpus, n) + extra, zone


def spread(items: Sequence[T], n: int) -> list[T]:
    """``n`` items taken evenly across ``items`` (each repeated alike when ``n`` exceeds them), so
    the sample keeps the split's ham/spam mix rather than its first rows."""
    return [items[i * len(items) // n] for i in range(n)] if items else []


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return f"{os.cpu_count()} CPUs, {model}; commit {commit or '?'}; uptime: {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1500, help="corpus messages per pass (test split)")
    parser.add_argument("--synthetic", type=int, default=0, help="DKIM-signed/unsigned messages added")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    parser.add_argument("--per-session", type=int, default=10, help="messages per persistent connection")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the sessions run in")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the setups")
    parser.add_argument("--quick", action="store_true", help="300 messages, 2 rounds")
    parser.add_argument("--no-rspamd", action="store_true", help="skip setup 4")
    parser.add_argument("--keep", action="store_true", help="keep the runtime folder (logs, configs)")
    parser.add_argument(
        "--workers", type=int, default=0, help="[milter] workers of milterfilters (0: one per CPU)"
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = min(args.n, 300), min(args.rounds, 2)

    mails, zone = corpus_messages(args.n, args.synthetic)
    _MAILS[:] = mails
    kinds = Counter(m.kind for m in mails)
    print(f"{len(mails)} messages {dict(kinds)}", file=sys.stderr)
    dns_process, dns = start_dns(zone)  # type: ignore[arg-type]
    runtime = make_runtime_dir()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-throughput-", dir=runtime))
    os.chmod(work, 0o755)
    postfixes: list[PostfixInstance] = []
    milters: list[MilterProcess] = []
    rspamd_peer = Peers(work)

    def postfix(name: str, milter: str | None) -> PostfixInstance:
        instance = PostfixInstance(work / name, milter=milter, main_cf=DISCARD)
        postfixes.append(instance)
        instance.start()
        return instance

    def milterfilters(label: str, name: str, config: str) -> Setup:
        data = tomllib.loads(config)
        data.setdefault("milter", {})["workers"] = args.workers  # else the test harness's 1
        process = MilterProcess(work / f"milter-{name}", tomli_w.dumps(data))
        milters.append(process)
        process.start()
        pid = process.pid
        assert pid is not None
        return Setup(label, postfix(f"postfix-{name}", process.postfix_spec).port, lambda: descendants(pid))

    dns_section = f'\n[dns]\nnameservers = ["{dns}"]\ntimeout = 2.0\n'
    try:
        setups = [
            Setup("Postfix alone", postfix("postfix-alone", None).port),
            milterfilters("+ milterfilters, default chain", "default", EMBEDDED_DEFAULT_TOML + dns_section),
            milterfilters("+ milterfilters, full chain", "full", full_chain_config(dns)),
        ]
        rspamd: Setup | None = None
        if not args.no_rspamd:
            print("  starting rspamd (a cold start compiles hyperscan: ~20 s)", file=sys.stderr)
            rspamd_peer.start_rspamd(nameserver=dns, milter=True)
            mta = postfix("postfix-rspamd", f"unix:{rspamd_peer.rspamd_milter_socket}")
            rspamd = Setup("+ rspamd proxy (milter)", mta.port, lambda: descendants(rspamd_peer.rspamd_pid))
            setups.append(rspamd)
        for s in setups:  # warm up: model load, caches, first connections
            drive(s.port, min(len(mails), 60), 1, 4, 1)
            if s.milter_pids:
                wait_idle(s.milter_pids)
        print(f"  before: {machine()}", file=sys.stderr)
        for r in range(args.rounds):
            order = setups if r % 2 == 0 else setups[::-1]
            for mode in MODES:
                for s in order:
                    s.run(mode, args)
        for s in setups:
            s.record_memory()
        print(f"{len(mails)} messages {dict(kinds)} per pass; {args.sessions} concurrent sessions in "
              f"{args.client_processes} processes; persistent = {args.per_session} messages per connection "
              f"with RSET between; {args.rounds} rounds, setups alternated; discard transport; "
              "unix sockets")  # fmt: skip
        print(f"machine: {machine()}")
        print_table(setups, rspamd)
        codes = {s.label: dict(s.codes) for s in setups}
        print(f"reply codes over all passes: {codes}")
    finally:
        stop_all(rspamd_peer, milters, postfixes, dns_process, runtime, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
