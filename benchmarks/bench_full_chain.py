#!/usr/bin/env python3
"""SMTP throughput and latency of a real Postfix: alone, with milterfilters (default chain and
full chain), and with rspamd's proxy worker as a milter, all on the same messages in one run.

    .venv/bin/python benchmarks/bench_full_chain.py [-n 150] [--synthetic 30] [--clients 4]

The messages are test-split rows of the SpamAssassin corpus (read from the archive at run
time, never stored) plus synthetic ones: DKIM-signed (RSA-2048 and Ed25519, with DMARC
p=reject) and unsigned. Every message goes in its own SMTP session from client address
203.0.113.7 (XCLIENT), first serially, then from ``--clients`` concurrent clients. Every milter
listens on a unix socket (on TCP, Postfix's Nagle/delayed-ACK stall adds ~40 ms per message).

Setups:
  1. Postfix alone;
  2. + milterfilters, default chain (relay without domains, authres_forgery, gtube, size, classifier);
  3. + milterfilters, full chain: relay (local_domains), spf, dkim, dmarc, classifier, resolving
     through a loopback DNS server (tests/support/dnsserver.py, in a child process) that serves
     the senders' SPF, DKIM and DMARC records;
  4. + rspamd 3 proxy worker (``milter = yes``) on a unix socket, its DNS pointed at the same
     server (Redis for its Bayes backend, untrained; network modules off as in peers.py).

Prints one table: ratios against Postfix alone, the milter's CPU ms per message over both
passes and its PSS (proportional resident memory of all its processes, shared pages counted
once) after them. With ``--profile``, then where setup 3's chain spends its time per message
(cProfile over the same messages, in process, with the same configuration and DNS server).
Needs root, Postfix and rspamd + redis-server (``apt-get install rspamd redis-server``).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import multiprocessing.connection
import os
import pstats
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path

import dkim

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus import load_split
from peers import Peers

from milterfilters.api import build_chain, default_services, evaluate
from milterfilters.auth.dkim_keys import PrivateKey, generate_key
from milterfilters.config import load_config
from tests.e2e.milter import MilterProcess
from tests.e2e.postfix import PostfixInstance
from tests.e2e.runtime import make_runtime_dir
from tests.support.dnsserver import DnsTestServer, Zone

CLIENT_IP = "203.0.113.7"
HELO = "mail.client.example"
RECIPIENT = "user@test.example"
AUTHSERV_ID = "mx.test.example"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    raw: bytes  # CRLF line ends, no mbox "From " line
    kind: str


def to_crlf(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def synthetic(i: int, sender: str, signer: tuple[bytes, PrivateKey, bytes] | None) -> Envelope:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = RECIPIENT
    msg["Subject"] = f"Quarterly figures {i}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    msg.set_content(f"Hello,\n\nplease find the figures for item {i} below.\n\n" + "Line of text.\n" * 40)
    raw = to_crlf(msg.as_bytes())
    if signer is not None:
        selector, key, algorithm = signer
        domain = sender.split("@")[1].encode()
        raw = dkim.sign(raw, selector, domain, key.dkimpy_key, signature_algorithm=algorithm) + raw
    return Envelope(sender, raw, "signed" if signer else "unsigned")


def build_messages(n_corpus: int, n_synthetic: int) -> tuple[list[Envelope], Zone]:
    """The message mix and the DNS zone that publishes its senders' records."""
    rsa_key = generate_key("rsa", 2048)[1]
    ed_key = generate_key("ed25519")[1]
    zone = Zone(
        {
            "corpus.example": [("TXT", "v=spf1 ip4:203.0.113.0/24 -all")],
            "rsa.example": [("TXT", f"v=spf1 ip4:{CLIENT_IP} -all")],
            "s1._domainkey.rsa.example": [("TXT", rsa_key.public_record)],
            "_dmarc.rsa.example": [("TXT", "v=DMARC1; p=reject")],
            "ed.example": [("TXT", f"v=spf1 ip4:{CLIENT_IP} -all")],
            "s1._domainkey.ed.example": [("TXT", ed_key.public_record)],
            "_dmarc.ed.example": [("TXT", "v=DMARC1; p=reject")],
            "plain.example": [("TXT", "v=spf1 ip4:198.51.100.0/24 ~all")],
            "_dmarc.plain.example": [("TXT", "v=DMARC1; p=none")],
            HELO: [("TXT", f"v=spf1 ip4:{CLIENT_IP} -all"), ("A", CLIENT_IP)],
        }
    )
    test = load_split("test")
    step = max(1, len(test) // n_corpus)
    mails = [Envelope(f"list{i}@corpus.example", to_crlf(m.raw), m.label) for i, m in enumerate(test[::step])]
    mails = mails[:n_corpus]
    for i in range(n_synthetic):
        match i % 3:
            case 0:
                mails.append(synthetic(i, "billing@rsa.example", (b"s1", rsa_key, b"rsa-sha256")))
            case 1:
                mails.append(synthetic(i, "news@ed.example", (b"s1", ed_key, b"ed25519-sha256")))
            case _:
                mails.append(synthetic(i, "someone@plain.example", None))
    return mails, zone


# --- loopback DNS in a child process (its threads would otherwise share the client's GIL) ---


def _serve_dns(zone: Zone, conn: multiprocessing.connection.Connection) -> None:
    server = DnsTestServer(zone).start()
    conn.send(server.address)
    signal.sigwait({signal.SIGTERM})


def start_dns(zone: Zone) -> tuple[BaseProcess, str]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve_dns, args=(zone, child), daemon=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited: sigwait needs it blocked
    process.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    return process, parent.recv()


# --- the SMTP client --------------------------------------------------------------------------


def send_one(port: int, mail: Envelope) -> tuple[float, int]:
    """Seconds for one SMTP session carrying ``mail`` and the final reply code."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo(HELO)
        code, text = s.docmd("XCLIENT", f"ADDR={CLIENT_IP} NAME={HELO}")
        if code != 220:
            raise RuntimeError(f"XCLIENT refused: {code} {text!r}")
        s.ehlo(HELO)
        try:
            s.sendmail(mail.mail_from, [RECIPIENT], mail.raw)
            code = 250
        except smtplib.SMTPResponseException as e:  # a rejected message still counts
            code = e.smtp_code
        except smtplib.SMTPRecipientsRefused as e:
            code = next(iter(e.recipients.values()))[0]
    return time.perf_counter() - start, code


@dataclass(frozen=True)
class Pass:
    times: list[float]
    wall: float
    codes: dict[int, int]

    @property
    def rate(self) -> float:
        return len(self.times) / self.wall

    def ms(self, which: str) -> float:
        ordered = sorted(self.times)
        value = {
            "mean": statistics.mean(ordered),
            "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        }[which]
        return 1000 * value


def run_pass(port: int, mails: Sequence[Envelope], clients: int) -> Pass:
    started = time.perf_counter()
    if clients == 1:
        results = [send_one(port, m) for m in mails]
    else:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda m: send_one(port, m), mails))
    wall = time.perf_counter() - started
    codes: dict[int, int] = {}
    for _, code in results:
        codes[code] = codes.get(code, 0) + 1
    return Pass([t for t, _ in results], wall, codes)


# --- the milter processes' cost ------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += descendants(int(child))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a process that has just ended
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def wait_idle(pids_of: Callable[[], list[int]], timeout: float = 120.0) -> None:
    """Wait until the processes use under 2 % of a core over half a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pids_of()
        before = cpu_seconds(pids)
        time.sleep(0.5)
        if cpu_seconds(pids) - before < 0.01:
            return
    print(f"  still busy after {timeout:.0f} s: measuring anyway", file=sys.stderr)


def pss_mb(pids: Sequence[int]) -> float:
    """Proportional set size of the processes together: shared pages (rspamd's workers share
    the main process's maps) are counted once, split among their users, not once per process."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    label: str
    serial: Pass
    concurrent: Pass
    cpu_ms: float | None  # milter CPU per message, over both passes
    memory: float | None  # PSS in MB after the passes


def measure(
    label: str,
    port: int,
    mails: Sequence[Envelope],
    clients: int,
    milter_pids: Callable[[], list[int]] | None,
) -> Result:
    run_pass(port, mails[:20], 1)  # warm up: model load, caches, first connections
    if milter_pids:
        wait_idle(milter_pids)  # e.g. rspamd compiling hyperscan in the background after a start
    pids = milter_pids() if milter_pids else []
    cpu_before = cpu_seconds(pids) if pids else 0.0
    serial = run_pass(port, mails, 1)
    concurrent = run_pass(port, mails, clients)
    pids = milter_pids() if milter_pids else []
    cpu = 1000 * (cpu_seconds(pids) - cpu_before) / (2 * len(mails)) if pids else None
    result = Result(label, serial, concurrent, cpu, pss_mb(pids) if pids else None)
    print(f"  {label}: serial {serial.codes}, concurrent {concurrent.codes}", file=sys.stderr)
    return result


def full_chain_config(dns: str) -> str:
    return f"""
[milter]
authserv_id = "{AUTHSERV_ID}"
[dns]
nameservers = ["{dns}"]
timeout = 2.0
[relay]
local_domains = ["test.example"]
[spf]
enabled = true
[dkim]
enabled = true
[dmarc]
enabled = true
[classifier]
enabled = true
"""


def print_table(results: Sequence[Result], clients: int) -> None:
    base = results[0]
    print(
        f"{'setup':<40} {'serial ms: mean':>15} {'median':>7} {'p95':>7} {'msg/s':>6} {'ratio':>5} | "
        f"{f'{clients} clients ms: mean':>20} {'p95':>7} {'msg/s':>6} {'ratio':>5} | "
        f"{'milter CPU ms/msg':>17} {'PSS MB':>7}"
    )
    for r in results:
        s, c = r.serial, r.concurrent
        cpu = f"{r.cpu_ms:17.2f}" if r.cpu_ms is not None else f"{'-':>17}"
        memory = f"{r.memory:7.0f}" if r.memory is not None else f"{'-':>7}"
        print(
            f"{r.label:<40} {s.ms('mean'):15.2f} {s.ms('median'):7.2f} {s.ms('p95'):7.2f} {s.rate:6.0f} "
            f"{s.ms('mean') / base.serial.ms('mean'):5.2f} | {c.ms('mean'):20.2f} {c.ms('p95'):7.2f} "
            f"{c.rate:6.0f} {base.concurrent.rate / c.rate:5.2f} | {cpu} {memory}"
        )
    print("ratio = mean latency (serial) or messages/s (concurrent) relative to Postfix alone")


def profile_chain(config_path: Path, mails: Sequence[Envelope], top: int) -> None:
    """Setup 3's chain in process over the same messages: time per filter and top functions."""
    config = load_config(config_path)
    chain = build_chain(config, services=default_services(config))

    def run_all() -> None:
        for m in mails:
            evaluate(chain, m.raw, client_ip=CLIENT_IP, client_name=HELO, helo=HELO,
                     mail_from=m.mail_from, recipients=[RECIPIENT])  # fmt: skip

    run_all()  # warm: DNS cache, model, imports
    started = time.perf_counter()
    run_all()
    plain = time.perf_counter() - started
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    run_all()
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    n = len(mails)
    print(
        f"\nthe full chain in process, warm: {1000 * plain / n:.2f} ms/message "
        f"({1000 * wall / n:.2f} under cProfile, whose figures below are inflated alike)"
    )
    per_filter: dict[str, float] = {}
    for (filename, _, func), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "/milterfilters/filters/" in filename and func in ("connect", "helo", "mail", "rcpt", "eom"):
            name = Path(filename).stem
            per_filter[name] = per_filter.get(name, 0.0) + cumulative
    for (filename, _, func), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func == "parse_message" and filename.endswith("milterfilters/mail/message.py"):
            per_filter["(parse_message)"] = cumulative
    print("per filter (cumulative ms/message):")
    for name, seconds in sorted(per_filter.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<18} {1000 * seconds / n:7.3f}")
    print(f"top {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=150, help="corpus messages (test split rows)")
    parser.add_argument("--synthetic", type=int, default=30, help="synthetic messages (2/3 DKIM-signed)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent SMTP clients in the second pass")
    parser.add_argument("--no-rspamd", action="store_true", help="skip setup 4")
    parser.add_argument("--profile", action="store_true", help="profile setup 3's chain afterwards")
    parser.add_argument("--top", type=int, default=15, help="functions listed by the profile")
    parser.add_argument("--keep", action="store_true", help="keep the runtime folder (logs, configs)")
    args = parser.parse_args()

    mails, zone = build_messages(args.n, args.synthetic)
    kinds: dict[str, int] = {}
    for m in mails:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    size = statistics.median(len(m.raw) for m in mails)
    print(f"{len(mails)} messages {kinds}, median {size / 1024:.1f} KiB", file=sys.stderr)
    dns_process, dns = start_dns(zone)
    runtime = make_runtime_dir()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-chain-", dir=runtime))
    os.chmod(work, 0o755)
    postfixes: list[PostfixInstance] = []
    milters: list[MilterProcess] = []
    rspamd = Peers(work)
    results = []

    def postfix(name: str, milter: str | None) -> PostfixInstance:
        instance = PostfixInstance(work / name, milter=milter)
        postfixes.append(instance)
        instance.start()
        return instance

    def milterfilters(name: str, config: str) -> MilterProcess:
        process = MilterProcess(work / name, config)
        milters.append(process)
        process.start()
        return process

    try:
        alone = postfix("postfix-alone", None)
        results.append(measure("1 postfix alone", alone.port, mails, args.clients, None))
        for label, name, config in (
            ("2 + milterfilters, default chain", "default", ""),
            ("3 + milterfilters, full chain", "full", full_chain_config(dns)),
        ):
            milter = milterfilters(f"milter-{name}", config)
            assert milter.pid is not None
            mta = postfix(f"postfix-{name}", milter.postfix_spec)
            results.append(measure(label, mta.port, mails, args.clients, partial(descendants, milter.pid)))
            milter.stop()
        if not args.no_rspamd:
            print("  starting rspamd (a cold start compiles hyperscan: ~20 s)", file=sys.stderr)
            rspamd.start_rspamd(nameserver=dns, milter=True)
            mta = postfix("postfix-rspamd", f"unix:{rspamd.rspamd_milter_socket}")
            results.append(
                measure(
                    "4 + rspamd proxy (milter)",
                    mta.port,
                    mails,
                    args.clients,
                    lambda: descendants(rspamd.rspamd_pid),
                )
            )
        print(f"{len(mails)} messages {kinds}; one SMTP session each; all milters on unix sockets")
        print_table(results, args.clients)
        if args.profile:  # while the DNS server still runs
            profile_chain(work / "milter-full" / "milterfilters.toml", mails, args.top)
    finally:
        stop_all(rspamd, milters, postfixes, dns_process, runtime, keep=args.keep)
    return 0


def stop_all(
    rspamd: Peers,
    milters: Sequence[MilterProcess],
    postfixes: Sequence[PostfixInstance],
    dns_process: subprocess.Popen[bytes],
    runtime: Path,
    *,
    keep: bool,
) -> None:
    """Stop every daemon a benchmark started, then remove its runtime folder (unless ``keep``)."""
    rspamd.stop()
    for process in milters:
        process.stop()
    for p in postfixes:
        p.stop()
    dns_process.terminate()
    if keep:
        print(f"runtime folder kept: {runtime}", file=sys.stderr)
    else:
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
