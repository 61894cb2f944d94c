"""No mail lost under faults: clients that retry like an MTA queue, faults injected meanwhile,
and a ledger that compares what every client was told with what reached the Maildir.

Used by ``tests/e2e/test_no_mail_lost.py`` (short) and ``benchmarks/fault_soak.py`` (long).
The stack is a private Postfix + milterfilters (``milter_default_action = tempfail``) whose
SPF filter asks a loopback DNS server (:class:`FlakyZone`) that sometimes does not answer for
one sender domain, so that filter fails on some messages (it runs past its ``timeout`` and its
``on_error = "tempfail"`` applies), and that can be made to answer nothing at all (an outage).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from dnslib import RCODE

from tests.support.dnsserver import DnsTestServer, Reply, Zone, make_rr
from tests.support.hostile import KINDS, hostile_message

from .mta import MailStack, StackPool
from .runtime import wait_until
from .smtp import DISCONNECTED, SmtpClient, SmtpTranscript, make_message

SOAK_DOMAIN = "soak.example"
#: sender domains ``mN.flaky.soak.example`` (one per message, so the milter's DNS cache does
#: not hide the fault) whose SPF record the DNS server sometimes does not send
FLAKY_DOMAIN = "flaky.soak.example"
RECIPIENT = "user@test.example"
#: the address the clients present with XCLIENT (loopback clients skip SPF); the SPF records allow it
CLIENT_ADDRESS = "203.0.113.7"


class FlakyZone(Zone):
    """SPF records for the soak's sender domains; silent for names under :data:`FLAKY_DOMAIN`
    with probability ``flaky_rate``, and for every name while :attr:`outage` is set."""

    SPF = f"v=spf1 ip4:{CLIENT_ADDRESS} -all"

    def __init__(self, flaky_rate: float, seed: int) -> None:
        spf = [("TXT", self.SPF)]
        super().__init__({SOAK_DOMAIN: spf, "client.example": spf})
        self.flaky_rate = flaky_rate
        self.outage = threading.Event()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def lookup(self, qname: str, qtype: str) -> Reply | None:
        if self.outage.is_set():
            return None
        name = qname.rstrip(".").lower()
        if not name.endswith("." + FLAKY_DOMAIN):
            return super().lookup(qname, qtype)
        with self._lock:
            if self._random.random() < self.flaky_rate:
                return None
        if qtype == "TXT":
            return Reply(RCODE.NOERROR, (make_rr(name, "TXT", self.SPF),))
        return Reply(RCODE.NOERROR, (), (self.soa(name),))


def soak_config(dns: DnsTestServer, *, tag: str = "") -> str:
    """The milter's TOML: SPF through ``dns``; a DNS answer that does not come within the SPF
    filter's ``timeout`` is a filter error, whose ``on_error`` tempfails. ``tag`` changes
    the configuration harmlessly, so a reload has something to load."""
    return (
        f'[dns]\nnameservers = ["{dns.address}"]\ntimeout = 1.0\n\n'
        f'[milter]\nauthserv_id = "mx{tag}.soak.test"\n\n'
        '[spf]\nenabled = true\ntimeout = 0.6\non_error = "tempfail"\ntemperror = "tempfail"\n'
    )


@dataclass
class Letter:
    """One uniquely identified message and what its client was told about it."""

    message_id: str
    mail_from: str
    message: bytes
    attempts: int = 0
    temporary: int = 0  # 4xx replies (or no reply: refused / dropped connections)
    accepted: bool = False
    permanent: str | None = None  # the 5xx reply, if any (never, for clean mail)
    #: an attempt whose fate the client cannot know (the connection dropped after DATA):
    #: a real MTA retries it, so a later duplicate would not be the milter's fault
    uncertain: int = 0
    #: "clean", or the kind of hostile message (tests/support/hostile.py)
    kind: str = "clean"
    bare_lf: bool = False


@dataclass
class Ledger:
    """Every message of the soak and, at the end, how many copies of each were delivered."""

    letters: list[Letter]
    delivered: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> list[Letter]:
        return [x for x in self.letters if x.accepted]

    @property
    def held(self) -> list[Letter]:
        """Never accepted: still in its client's queue when the retries ran out."""
        return [x for x in self.letters if not x.accepted and x.permanent is None]

    @property
    def rejected(self) -> list[Letter]:
        return [x for x in self.letters if x.permanent is not None]

    @property
    def rejected_clean(self) -> list[Letter]:
        """Clean mail refused (never right); hostile mail may be refused, with a reason."""
        return [x for x in self.rejected if x.kind == "clean"]

    @property
    def rejected_without_reason(self) -> list[Letter]:
        return [x for x in self.rejected if not (x.permanent or "")[4:].strip()]

    @property
    def lost(self) -> list[Letter]:
        """Accepted (250 at end of data) but never delivered."""
        return [x for x in self.accepted if self.delivered[x.message_id] == 0]

    @property
    def duplicated(self) -> list[Letter]:
        return [x for x in self.letters if self.delivered[x.message_id] > 1]

    @property
    def delivered_unacknowledged(self) -> list[Letter]:
        """Delivered although the client was never told so (only possible after an uncertain attempt)."""
        return [x for x in self.letters if not x.accepted and self.delivered[x.message_id] > 0]

    @property
    def strangers(self) -> int:
        """Delivered messages that no client sent."""
        ours = {x.message_id for x in self.letters}
        return sum(n for mid, n in self.delivered.items() if mid not in ours)


#: every HOSTILE_EVERY-th message is a hostile one (the kinds in turn)
HOSTILE_EVERY = 5


def make_letter(i: int, run: str) -> Letter:
    """Message ``i`` of a run, with a unique Message-ID; every 4th from the flaky sender domain,
    every :data:`HOSTILE_EVERY`-th a hostile shape (huge header field, quoted ``@`` local part,
    8-bit garbage headers, deep MIME, a NUL byte, bare LF line ends)."""
    domain = f"m{i}.{FLAKY_DOMAIN}" if i % 4 == 3 else SOAK_DOMAIN
    sender = f"soak-{run}-{i}@{domain}"
    message_id = f"<soak-{run}-{i}@client.example>"
    if i % HOSTILE_EVERY == HOSTILE_EVERY - 1:
        kinds = sorted(KINDS)
        hostile = hostile_message(kinds[(i // HOSTILE_EVERY) % len(kinds)], message_id, sender)
        return Letter(
            message_id, hostile.mail_from, hostile.message, kind=hostile.kind, bare_lf=hostile.bare_lf
        )
    body = f"Soak message {i}.\r\n" + "A clean line of text for the content checks.\r\n" * 10
    return Letter(
        message_id, sender, make_message(f"soak {i}", body=body, sender=sender, message_id=message_id)
    )


class LetterSource:
    """Hands out new messages to the clients (thread-safe): at least ``minimum``, and more
    until ``enough()`` is true (e.g. until every fault has been injected)."""

    def __init__(self, run: str, minimum: int, enough: Callable[[], bool]) -> None:
        self.run = run
        self.minimum = minimum
        self.enough = enough
        self.letters: list[Letter] = []
        self._lock = threading.Lock()

    def next(self) -> Letter | None:
        with self._lock:
            if len(self.letters) >= self.minimum and self.enough():
                return None
            letter = make_letter(len(self.letters), self.run)
            self.letters.append(letter)
            return letter


def _record(letter: Letter, t: SmtpTranscript) -> bool:
    """Note one attempt's outcome; True when the client is done with the message."""
    final = t.final
    if t.accepted:
        letter.accepted = True
        return True
    if final.permanent:
        letter.permanent = f"{final.code} {final.text}"
        return True
    letter.temporary += 1
    if t.eom is DISCONNECTED:
        letter.uncertain += 1
    return False


def send_with_retries(port: int, source: LetterSource, *, max_tries: int, retry_delay: float) -> None:
    """One client: take messages from ``source`` and send each until accepted, refused (5xx),
    or ``max_tries`` attempts ran out, waiting ``retry_delay`` after each 4xx."""
    client = SmtpClient(xclient={"ADDR": CLIENT_ADDRESS}, timeout=60.0)
    while True:
        letter = source.next()
        if letter is None:
            return
        while letter.attempts < max_tries:
            letter.attempts += 1
            try:
                transcript = replace(client, bare_lf=letter.bare_lf).send(
                    port, letter.message, mail_from=letter.mail_from, rcpt_to=[RECIPIENT]
                )
            except OSError:  # connection refused or reset: try again later, as an MTA would
                letter.temporary += 1
                letter.uncertain += 1
                transcript = None
            if transcript is not None and _record(letter, transcript):
                break
            time.sleep(retry_delay)


@dataclass
class FaultStats:
    """What the fault injector did: faults by name, and for each the seconds from its start
    until the milter listened again."""

    done: Counter[str] = field(default_factory=Counter)
    downtime: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(
            f"{name} x{n} (back in max {max(self.downtime[name]):.1f} s)"
            for name, n in sorted(self.done.items())
        )


#: the default fault cycle
DEFAULT_FAULTS = (
    "worker-kill",
    "reload",
    "dns-outage",
    "milter-restart",
    "worker-kill",
    "reload",
    "milter-crash",
)


class FaultInjector:
    """Runs :attr:`faults` in turn, ~``pause`` seconds apart, ``cycles`` times over (or until
    stopped); each fault waits for the milter to listen again before the next one starts."""

    def __init__(
        self,
        stack: MailStack,
        dns: DnsTestServer,
        zone: FlakyZone,
        *,
        pause: float,
        cycles: int,
        seed: int,
        faults: Sequence[str] = DEFAULT_FAULTS,
    ) -> None:
        self.stack = stack
        self.dns = dns
        self.zone = zone
        self.pause = pause
        self.cycles = cycles
        self.finished = threading.Event()
        self.stats = FaultStats()
        self._stop = threading.Event()
        self._reloads = 0
        self._random = random.Random(seed)
        self.error: BaseException | None = None
        actions: dict[str, Callable[[], None]] = {
            "worker-kill": self.kill_worker,  # SIGKILL the libmilter worker; the supervisor restarts it
            "reload": self.reload,  # SIGHUP with a changed configuration
            "dns-outage": self.dns_outage,  # the DNS server answers nothing for a while
            "milter-restart": self.restart_milter,  # SIGTERM supervisor and worker, start again
            "milter-crash": self.crash_milter,  # SIGKILL both (stale socket file), start again
        }
        self.faults = [(name, actions[name]) for name in faults]

    def kill_worker(self) -> None:
        milter = self.stack.milter
        (worker,) = milter.worker_pids()
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: milter.worker_pids() not in ([], [worker]), 60, "a new worker")

    def reload(self) -> None:
        self._reloads += 1
        self.stack.milter.reload(soak_config(self.dns, tag=str(self._reloads % 2)))

    def dns_outage(self) -> None:
        self.zone.outage.set()
        self._sleep(min(3.0, self.pause * 2))
        self.zone.outage.clear()

    def restart_milter(self) -> None:
        self.stack.milter.stop()
        self._sleep(1.0)
        self.stack.milter.start()

    def crash_milter(self) -> None:
        self.stack.milter.kill()  # supervisor and worker; the socket file stays behind
        self._sleep(1.0)
        self.stack.milter.start()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def run(self) -> None:
        try:
            for name, fault in self.faults * self.cycles:
                if self._stop.wait(self.pause * (0.5 + self._random.random())):
                    return
                start = time.monotonic()
                fault()
                wait_until(lambda: self.stack.milter.listening, 60, "the milter to listen again")
                self.stats.done[name] += 1
                self.stats.downtime.setdefault(name, []).append(time.monotonic() - start)
        except BaseException as e:  # reported by the caller: a fault that cannot be injected fails the run
            self.error = e
        finally:
            self.finished.set()

    def stop(self) -> None:
        self._stop.set()


@contextmanager
def running(injector: FaultInjector) -> Iterator[FaultInjector]:
    """Inject faults in a thread for the duration of the ``with`` block."""
    thread = threading.Thread(target=injector.run, name="faults", daemon=True)
    thread.start()
    try:
        yield injector
    finally:
        injector.stop()
        thread.join(120)


@dataclass
class SoakResult:
    """A finished soak: the ledger, the faults, and what the milter's log says happened."""

    ledger: Ledger
    faults: FaultStats
    worker_restarts: int
    filter_errors: int
    elapsed: float

    @property
    def attempts(self) -> int:
        return sum(x.attempts for x in self.ledger.letters)

    @property
    def temporary(self) -> int:
        return sum(x.temporary for x in self.ledger.letters)

    def lines(self) -> list[str]:
        """The figures, one per line."""
        ledger = self.ledger
        faults = self.faults.summary() or "none"
        return [
            f"messages            {len(ledger.letters)}",
            f"attempts            {self.attempts}",
            f"4xx seen            {self.temporary}  (incl. refused/dropped connections)",
            f"faults              {faults}",
            f"worker restarts     {self.worker_restarts}  (by the supervisor)",
            f"filter errors       {self.filter_errors}  (spf past its timeout -> on_error tempfail)",
            f"accepted            {len(ledger.accepted)}",
            f"delivered           {sum(ledger.delivered.values())}  ({len(ledger.delivered)} distinct)",
            f"duplicates          {len(ledger.duplicated)}",
            f"lost                {len(ledger.lost)}  (accepted, never delivered)",
            f"held by client      {len(ledger.held)}  (retries ran out; still the client's to send)",
            f"rejected (5xx)      {len(ledger.rejected)}  (clean: {len(ledger.rejected_clean)})",
            f"hostile             {sum(x.kind != 'clean' for x in ledger.letters)}  "
            f"({', '.join(sorted({x.kind for x in ledger.letters if x.kind != 'clean'})) or 'none'})",
            f"delivered unacked   {len(ledger.delivered_unacknowledged)}",
            f"elapsed             {self.elapsed:.1f} s",
        ]


def run_soak(
    pool: StackPool,
    *,
    messages: int,
    clients: int,
    fault_pause: float,
    fault_cycles: int = 1,
    faults: Sequence[str] = DEFAULT_FAULTS,
    max_tries: int = 30,
    retry_delay: float = 0.5,
    flaky_rate: float = 0.3,
    seed: int = 1,
    run: str | None = None,
) -> SoakResult:
    """Start a private stack and send at least ``messages`` with ``clients`` threads, and
    more until the faults (one every ~``fault_pause`` seconds) ran ``fault_cycles`` times
    over; wait for delivery and return the ledger."""
    run = run or f"{time.time_ns():x}"
    zone = FlakyZone(flaky_rate, seed)
    with DnsTestServer(zone) as dns:
        stack = pool.postfix(soak_config(dns), private=True)
        log_start = stack.milter.log_size()
        injector = FaultInjector(
            stack, dns, zone, pause=fault_pause, cycles=fault_cycles, seed=seed, faults=faults
        )
        source = LetterSource(run, messages, injector.finished.is_set)
        start = time.monotonic()
        with running(injector):
            threads = [
                threading.Thread(
                    target=send_with_retries,
                    args=(stack.mta.port, source),
                    kwargs={"max_tries": max_tries, "retry_delay": retry_delay},
                    name=f"client-{i}",
                )
                for i in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if injector.error is not None:
            raise injector.error
        ledger = Ledger(source.letters)
        expected = {x.message_id for x in ledger.accepted}

        def all_delivered() -> bool:
            ledger.delivered = count_delivered(stack)
            return expected <= set(ledger.delivered)

        try:
            wait_until(all_delivered, 30, "delivery of every accepted message", interval=0.2)
        except TimeoutError:
            pass  # counted as lost below
        time.sleep(0.5)  # a late duplicate would show now
        ledger.delivered = count_delivered(stack)
        elapsed = time.monotonic() - start
        log = stack.milter.log_text(log_start)
        stack.stop()
    return SoakResult(
        ledger=ledger,
        faults=injector.stats,
        worker_restarts=log.count("restarting in"),
        filter_errors=log.count("filter spf spf: timed out"),
        elapsed=elapsed,
    )


def count_delivered(stack: MailStack) -> Counter[str]:
    """Copies delivered per Message-ID."""
    return Counter(str(msg.get("Message-ID", "")).strip() for msg in stack.mailbox.messages())
