"""A real DNS server for tests: UDP and TCP on one loopback port, in this process.

It answers from a :class:`Zone` (Python data or zone-file text), follows CNAMEs the way a
recursive server would, sends an SOA with negative answers (so they can be cached), and
can be told to misbehave per name: stay silent (the client times out), answer SERVFAIL,
or truncate UDP answers so that the client must retry over TCP. Every question is
logged, so tests can count what actually reached the wire::

    with DnsTestServer(Zone({"example.com": [("TXT", "v=spf1 -all")]})) as server:
        resolver = Resolver([server.address], timeout=1)
        server.fault("slow.example.com", Fault.SILENCE)
        assert server.count("example.com", "TXT") == 0
"""

from __future__ import annotations

import enum
import socket
import socketserver
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel, DNSRecord

#: how many CNAMEs the server follows before giving up (a loop ends the chain earlier)
MAX_CNAME_CHAIN = 8


class Fault(enum.Enum):
    """A way for the server to misbehave for a name."""

    SILENCE = "silence"  # never answer: the client times out
    SERVFAIL = "servfail"  # answer with rcode SERVFAIL
    TRUNCATE = "truncate"  # UDP: empty answer with the TC bit; TCP: the real answer


@dataclass(frozen=True)
class Reply:
    """The server's answer to one question (before faults and truncation)."""

    rcode: int = RCODE.NOERROR
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()


@dataclass(frozen=True)
class Query:
    """One question as it reached the server."""

    name: str  # lower case, without the final dot
    qtype: str  # e.g. "TXT"
    transport: str  # "udp" or "tcp"


def _key(name: str | DNSLabel) -> str:
    return str(name).rstrip(".").lower()


def _txt_strings(value: Any) -> list[bytes]:
    """A TXT value as character-strings: a list is taken as is, one long string is split."""
    if isinstance(value, (list, tuple)):
        return [v.encode() if isinstance(v, str) else bytes(v) for v in value]
    data = value.encode() if isinstance(value, str) else bytes(value)
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def make_rr(name: str, rtype: str, value: Any, ttl: int = 300) -> RR:
    """One resource record from a Python value (see :class:`Zone` for the forms)."""
    rtype = rtype.upper()
    return RR(name, getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=ttl)


def _rdata(rtype: str, value: Any) -> Any:
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype in ("TXT", "SPF"):
        return TXT(_txt_strings(value))
    if rtype == "MX":
        preference, exchange = value
        return MX(exchange or ".", int(preference))
    if rtype == "PTR":
        return PTR(value)
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "NS":
        return NS(value)
    raise ValueError(f"unsupported record type {rtype!r}")


class Zone:
    """Records by owner name, answered the way a recursive server answers a stub resolver.

    ``records`` maps a name to ``(type, value)`` or ``(type, value, ttl)`` tuples: A and
    AAAA take an address, TXT (and SPF, type 99) a string/bytes (split at 255 bytes) or a
    list of character-strings, MX a ``(preference, exchange)`` pair, PTR/CNAME/NS a name.
    Negative answers carry an SOA whose minimum is ``negative_ttl``.
    """

    def __init__(
        self,
        records: Mapping[str, Iterable[Sequence[Any]]] | None = None,
        *,
        default_ttl: int = 300,
        negative_ttl: int = 60,
        origin: str | None = None,
    ) -> None:
        self.default_ttl = default_ttl
        self.negative_ttl = negative_ttl
        self.origin = origin
        self._rrs: dict[str, list[RR]] = {}
        for name, entries in (records or {}).items():
            self._rrs.setdefault(_key(name), [])
            for entry in entries:
                self.add(name, *entry)

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> Zone:
        """A zone from zone-file text (``$TTL`` and ``$ORIGIN`` are understood)."""
        zone = cls(**kwargs)
        if "$TTL" not in text:
            text = f"$TTL {zone.default_ttl}\n{text}"
        for rr in RR.fromZone(text):
            zone.add_rr(rr)
        return zone

    def add(self, name: str, rtype: str, value: Any, ttl: int | None = None) -> None:
        """Add one record."""
        self.add_rr(make_rr(name, rtype, value, self.default_ttl if ttl is None else ttl))

    def add_rr(self, rr: RR) -> None:
        self._rrs.setdefault(_key(rr.rname), []).append(rr)

    def names(self) -> list[str]:
        return list(self._rrs)

    def soa(self, qname: str) -> RR:
        """The SOA sent with negative answers for ``qname``."""
        owner = self.origin or ".".join(qname.split(".")[-2:])
        host = owner or "invalid"
        return RR(
            owner or ".",
            QTYPE.SOA,
            rdata=SOA(f"ns.{host}", f"hostmaster.{host}", (1, 3600, 600, 86400, self.negative_ttl)),
            ttl=self.negative_ttl,
        )

    def lookup(self, qname: str, qtype: str) -> Reply | None:
        """Answer ``qname``/``qtype``: the records, NODATA, or NXDOMAIN, CNAMEs followed.

        Subclasses may return ``None`` to stay silent.
        """
        chain: list[RR] = []
        name = _key(qname)
        seen = {name}
        code = getattr(QTYPE, qtype, None)
        for _ in range(MAX_CNAME_CHAIN):
            rrs = self._rrs.get(name)
            if rrs is None:
                return Reply(RCODE.NXDOMAIN, tuple(chain), (self.soa(name),))
            matching = [rr for rr in rrs if rr.rtype == code]
            if matching:
                return Reply(RCODE.NOERROR, tuple(chain + matching))
            cnames = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
            if not cnames:
                return Reply(RCODE.NOERROR, tuple(chain), (self.soa(name),))
            chain.append(cnames[0])
            name = _key(cnames[0].rdata.label)
            if name in seen:
                break
            seen.add(name)
        return Reply(RCODE.NOERROR, tuple(chain))


class _Udp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True
    block_on_close = False
    owner: DnsTestServer


class _Tcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: DnsTestServer


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.owner.respond(data, "udp")  # type: ignore[attr-defined]
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(30)
        try:
            while True:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                data = _recv_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                reply = self.server.owner.respond(data, "tcp")  # type: ignore[attr-defined]
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


@dataclass
class DnsTestServer:
    """The server: ``start()`` (or ``with``) binds UDP and TCP on one free loopback port."""

    zone: Zone = field(default_factory=Zone)
    host: str = "127.0.0.1"
    faults: dict[tuple[str, str | None], Fault] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self.port = 0

    @property
    def address(self) -> str:
        """``host:port``, as ``[dns] nameservers`` takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def fault(self, name: str, fault: Fault, qtype: str | None = None) -> None:
        """Misbehave for ``name`` (every type, or only ``qtype``)."""
        self.faults[(_key(name), qtype)] = fault

    def count(self, name: str | None = None, qtype: str | None = None, transport: str | None = None) -> int:
        """How many questions matching the given fields reached the server."""
        with self._lock:
            queries = list(self.queries)
        return sum(
            1
            for q in queries
            if (name is None or q.name == _key(name))
            and (qtype is None or q.qtype == qtype)
            and (transport is None or q.transport == transport)
        )

    def reset_log(self) -> None:
        with self._lock:
            self.queries.clear()

    def respond(self, data: bytes, transport: str) -> bytes | None:
        """The wire reply to one wire question, or ``None`` to stay silent."""
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return None
        qname = _key(request.q.qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        with self._lock:
            self.queries.append(Query(qname, qtype, transport))
        fault = self.faults.get((qname, qtype)) or self.faults.get((qname, None))
        if fault is Fault.SILENCE:
            return None
        reply = request.reply()
        if fault is Fault.SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return bytes(reply.pack())
        answer = self.zone.lookup(qname, qtype)
        if answer is None:  # a zone may decide to stay silent
            return None
        reply.header.rcode = answer.rcode
        for rr in answer.answer:
            reply.add_answer(rr)
        for rr in answer.authority:
            reply.add_auth(rr)
        wire = bytes(reply.pack())
        if transport == "udp" and (fault is Fault.TRUNCATE or len(wire) > _udp_limit(request)):
            short = request.reply()
            short.header.tc = 1
            return bytes(short.pack())
        return wire

    def start(self) -> DnsTestServer:
        for _ in range(50):
            udp = _Udp((self.host, self.port), _UdpHandler)
            port = udp.server_address[1]
            try:
                tcp = _Tcp((self.host, port), _TcpHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for UDP and TCP together")
        self.port = port
        for server in (udp, tcp):
            server.owner = self
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> DnsTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _udp_limit(request: DNSRecord) -> int:
    """The UDP payload size the client announced with EDNS, else 512 bytes."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, rr.rclass)
    return 512
