"""CPU per message of the chain in process (``milterfilters.evaluate``), beside rspamd's HTTP scan.

    .venv/bin/python benchmarks/bench_in_process.py [-n N] [--profile] [--no-rspamd] [--workdir DIR]

Reads the corpus test split (``shared/corpora``; see ``corpus.py``) and runs every message
through two chains built from the embedded default:

* ``default`` — the whole embedded default (relay, SPF, DKIM, DMARC, GTUBE, size, classifier),
  its resolver on the loopback test DNS server (``tests/support/dnsserver.py``) with an empty
  zone: every query gets NXDOMAIN at once, so SPF/DKIM/DMARC pay their parsing and one answered
  query each. (A *dead* loopback port is no use here: dnspython's unconnected UDP socket never
  sees the ICMP refusal and waits the whole timeout, 5 s a query.) The server runs in a thread
  of this process; CPU is counted for the main thread only;
* ``no-dns`` — the same without the filters that ask DNS (SPF, DKIM, DMARC).

Each message's CPU (``time.thread_time``, this thread only) is recorded; mean, p50 and p99 are
printed per chain. ``--profile`` runs the default chain once more under cProfile and prints the
top functions by cumulative and by own time.

If rspamd is installed (``apt-get install rspamd redis-server dnsmasq-base``), it is started
offline as ``peers.py`` does (DNS to a loopback dnsmasq that refuses every query; no Bayes
training), the same messages are posted to ``/checkv2`` on its normal worker over one
keep-alive connection, and rspamd's CPU per message (all its processes, from ``/proc``) is
printed with the ratio. Everything it starts is stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from corpus import Mail, load_split

from milterfilters.api import build_chain, evaluate
from milterfilters.config import Config
from milterfilters.core.chain import Chain
from tests.support.defaultconfig import default_config
from tests.support.dnsserver import DnsTestServer, Zone

#: filters of the embedded default that ask DNS
DNS_FILTERS = frozenset({"spf", "dkim", "dmarc", "arc"})
#: the transaction every message is judged in: an outside client, one recipient
TRANSACTION = {"client_ip": "203.0.113.9", "helo": "mail.example.net", "recipients": ["user@localhost"]}


def without_dns(config: Config) -> Config:
    """``config`` with the filters that ask DNS switched off."""
    filters = tuple(
        replace(spec, settings=replace(spec.settings, enabled=False)) if spec.name in DNS_FILTERS else spec
        for spec in config.filters
    )
    return replace(config, filters=filters)


def cpu_per_message(chain: Chain, mails: Sequence[Mail]) -> tuple[list[float], Counter[str]]:
    """Seconds of this thread's CPU per message, and how many ended at each stage."""
    seconds: list[float] = []
    stages: Counter[str] = Counter()
    for mail in mails:
        started = time.thread_time()
        outcome = evaluate(chain, mail.raw, **TRANSACTION)  # type: ignore[arg-type]
        seconds.append(time.thread_time() - started)
        stages[outcome.stage.name] += 1
    return seconds, stages


def summary(seconds: Sequence[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"mean {1000 * statistics.fmean(ordered):.3f} ms  p50 {1000 * statistics.median(ordered):.3f} ms  "
        f"p99 {1000 * p99:.3f} ms"
    )


def by_filter(chain: Chain, mails: Sequence[Mail]) -> dict[str, float]:
    """Mean CPU seconds per message spent in each filter's stage methods (the chain's own work
    — contexts, policy, headers — is the rest)."""
    spent: Counter[str] = Counter()
    for link in chain.links:
        run = link.filter.run

        def timed(stage: Any, ctx: Any, run: Callable[..., Any] = run, name: str = link.name) -> Any:
            started = time.thread_time()
            try:
                return run(stage, ctx)
            finally:
                spent[name] += time.thread_time() - started

        link.filter.run = timed  # type: ignore[method-assign]
    try:
        total, _ = cpu_per_message(chain, mails)
    finally:
        for link in chain.links:
            del link.filter.run  # type: ignore[attr-defined]
    out = {name: seconds / len(mails) for name, seconds in spent.most_common()}
    out["(chain itself)"] = statistics.fmean(total) - sum(out.values())
    return out


def profile(chain: Chain, mails: Sequence[Mail], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for mail in mails:
        evaluate(chain, mail.raw, **TRANSACTION)  # type: ignore[arg-type]
    profiler.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(f"--- profile of the default chain, by {order} ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def process_cpu(pids: Sequence[int]) -> float:
    """Seconds of CPU (user + system) used so far by ``pids``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def family(root: int) -> list[int]:
    """``root`` and its children (rspamd's main process and its workers)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == root:
                pids.append(int(entry.name))
    return pids


def rspamd_cpu(mails: Sequence[Mail], workdir: Path | None) -> tuple[float, float] | None:
    """rspamd's CPU and wall seconds per message over ``mails`` (None when rspamd is absent)."""
    if not shutil.which("rspamd") or not shutil.which("redis-server") or not shutil.which("dnsmasq"):
        print("rspamd: not installed (apt-get install rspamd redis-server dnsmasq-base): no baseline")
        return None
    from peers import Peers, rspamd_scorer

    work = workdir or Path(tempfile.mkdtemp(prefix="bench-in-process-"))
    peers = Peers(work)
    try:
        peers.start_rspamd()
        score: Callable[[bytes], float] = rspamd_scorer()  # type: ignore[assignment]
        for mail in mails[:20]:  # warm up (lazy maps, first compilation)
            score(mail.raw)
        pids = family(peers.rspamd_pid)
        cpu0, wall0 = process_cpu(pids), time.perf_counter()
        for mail in mails:
            score(mail.raw)
        return (process_cpu(pids) - cpu0) / len(mails), (time.perf_counter() - wall0) / len(mails)
    finally:
        peers.stop()
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run_chains(config: Config, mails: Sequence[Mail], *, profile_default: bool, top: int) -> dict[str, float]:
    """Mean CPU seconds per message of the default chain and of the one without DNS."""
    default = "default (loopback DNS, NXDOMAIN)"
    chains = {default: build_chain(config), "no-dns (SPF/DKIM/DMARC off)": build_chain(without_dns(config))}
    means: dict[str, float] = {}
    for name, chain in chains.items():
        cpu_per_message(chain, mails[:20])  # warm up (lazy imports, caches)
        seconds, stages = cpu_per_message(chain, mails)
        means[name] = statistics.fmean(seconds)
        print(f"{name:34s} CPU/message: {summary(seconds)}  (ended at: {dict(stages)})")
    shares = by_filter(chains[default], mails)
    print("default chain, CPU per message by filter: " + ", ".join(f"{k} {1000 * v:.3f} ms" for k, v in shares.items()))
    if profile_default:
        profile(chains[default], mails, top)
    return means


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=0, help="messages of the test split (default: all)")
    parser.add_argument("--profile", action="store_true", help="print the top functions of the default chain")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    parser.add_argument("--no-rspamd", action="store_true", help="skip the rspamd baseline")
    parser.add_argument("--workdir", type=Path, help="rspamd's state (kept: a warm hyperscan cache)")
    args = parser.parse_args(argv)

    mails = load_split("test")
    if args.n:
        mails = mails[: args.n]
    print(f"{len(mails)} messages of the test split; load: {os.getloadavg()[0]:.2f} (1-min)")
    with DnsTestServer(Zone()) as dns:
        config = default_config([dns.address], timeout=1.0)
        means = run_chains(config, mails, profile_default=args.profile, top=args.top)
    if not args.no_rspamd:
        measured = rspamd_cpu(mails, args.workdir)
        if measured is not None:
            cpu, wall = measured
            print(
                f"{'rspamd /checkv2 (no Bayes)':30s} CPU/message: mean {1000 * cpu:.3f} ms (all rspamd processes), "
                f"wall {1000 * wall:.3f} ms"
            )
            for name, mean in means.items():
                print(f"ratio {name} / rspamd: {mean / cpu:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
