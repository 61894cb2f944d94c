"""The pymilter adapter: maps libmilter callbacks onto a chain :class:`Session` and the
resulting :class:`Decision` back onto milter calls. It decides nothing itself.

One :class:`ChainMilter` object exists per MTA connection (pymilter's factory). The chain
it uses is taken from a :class:`ChainHolder` when the connection starts, so a reload that
swaps the holder's chain never disturbs connections in flight.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import Milter

from milterfilters.core.chain import Chain, Session
from milterfilters.core.context import Auth, Connection, HeaderField, Message, TlsInfo, strip_angle_brackets
from milterfilters.core.stages import Stage
from milterfilters.core.verdict import Action, Decision, HeaderDelete, HeaderPosition
from milterfilters.mail.message import header_field

log = logging.getLogger("milterfilters.milter")

#: Macros asked for at each protocol stage (SMFIF_SETSYMLIST), where the MTA supports it.
REQUESTED_MACROS: dict[int, str] = {
    Milter.M_CONNECT: "j _ v {daemon_name} {daemon_addr} {if_name} {if_addr} "
    "{client_addr} {client_name} {client_port} {client_ptr}",
    Milter.M_HELO: "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    Milter.M_ENVFROM: "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    Milter.M_ENVRCPT: "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    Milter.M_EOM: "i {auth_type} {auth_authen} {client_addr}",
}

_ALL_MACRO_NAMES = sorted({m for names in REQUESTED_MACROS.values() for m in names.split()})

#: Actions the milter may take on a message (registered with libmilter).
MILTER_FLAGS = Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE


class ChainHolder:
    """The chain new connections use; a reload replaces it atomically."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._lock = threading.Lock()

    @property
    def chain(self) -> Chain:
        return self._chain

    def replace(self, chain: Chain) -> Chain:
        """Install ``chain`` for new connections; returns the previous one."""
        with self._lock:
            old, self._chain = self._chain, chain
        return old


def _milter_text(text: str) -> str:
    # libmilter treats '%' as a format character in replies.
    return text.replace("%", "%%")


_FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6", socket.AF_UNIX: "unix"}


def _family(family: int) -> str:
    return _FAMILIES.get(family, "unknown")  # type: ignore[call-overload]


class ChainMilter(Milter.Base):  # type: ignore[misc]
    """One MTA connection, judged by the chain in :attr:`holder` at connect time."""

    holder: ClassVar[ChainHolder]

    def __init__(self) -> None:
        self.chain: Chain = self.holder.chain
        self.session: Session | None = None
        self.headers: list[HeaderField] = []
        self.header_bytes_seen = 0
        #: DATA arrived and the end of the header has not (an abort here means a cut message)
        self.in_header = False
        self.body_parts: list[bytes] = []
        self.body_kept = 0
        self.body_size = 0
        self.max_body = self.chain.max_body_bytes
        self.leading_space = False
        #: what the MTA lets the milter do (set at negotiation; everything if it never negotiates)
        self.offered_actions = Milter.CURR_ACTS

    # -- negotiation ---------------------------------------------------------------------

    def negotiate(self, opts: list[int]) -> Any:
        """Ask only for the protocol steps the configured filters need."""
        try:
            actions, offered, _, _ = opts
            self.offered_actions = actions
            stages = self.chain.stages
            # DATA is asked for (without a reply) so that an abort inside the header is told apart
            want_off = Milter.P_NOUNKNOWN
            if not self.chain.needs_headers:
                want_off |= Milter.P_NOHDRS
            if not self.chain.needs_body:
                want_off |= Milter.P_NOBODY
            # No reply needed where no filter can object (the MTA need not wait for us).
            no_reply = (
                Milter.P_NR_HDR | Milter.P_NR_EOH | Milter.P_NR_BODY | Milter.P_NR_UNKN | Milter.P_NR_DATA
            )
            for stage, flag in (
                (Stage.CONNECT, Milter.P_NR_CONN),
                (Stage.HELO, Milter.P_NR_HELO),
                (Stage.MAIL, Milter.P_NR_MAIL),
                (Stage.RCPT, Milter.P_NR_RCPT),
            ):
                if stage not in stages:
                    no_reply |= flag
            wanted = (want_off | no_reply) & offered
            if offered & Milter.P_HDR_LEADSPC:
                wanted |= Milter.P_HDR_LEADSPC
            if actions & Milter.SETSYMLIST:
                self._request_macros()
            self.leading_space = bool(wanted & Milter.P_HDR_LEADSPC)
            opts[1] = self._protocol = wanted
            opts[2] = opts[3] = 0
            return Milter.CONTINUE
        except Exception:
            log.exception("milter negotiation failed; using defaults")
            return Milter.ALL_OPTS

    def _request_macros(self) -> None:
        for macro_stage, names in REQUESTED_MACROS.items():
            try:
                self._ctx.setsymlist(macro_stage, names)  # pymilter 1.0.5's wrapper passes bytes: bypass
            except Exception as e:  # the MTA then sends its configured macros
                log.debug("macro list for stage %d not accepted: %s", macro_stage, e)

    # -- helpers -------------------------------------------------------------------------

    def _session(self) -> Session:
        """The connection's session (made here if the MTA skipped the connect step)."""
        if self.session is None:
            self.session = self.chain.session(Connection())
        return self.session

    def _no_reply(self, flag: int, result: int = Milter.CONTINUE) -> int:
        return Milter.NOREPLY if self._protocol & flag else result

    def _macros(self) -> dict[str, str]:
        out = {}
        for name in _ALL_MACRO_NAMES:
            value = self.getsymval(name)
            if value is not None:
                out[name] = value
        return out

    def _respond(self, decision: Decision, nr_flag: int = 0) -> int:
        """Turn a stage decision into a libmilter return code (and reply)."""
        if decision.action in (Action.REJECT, Action.TEMPFAIL) and decision.reply is not None:
            r = decision.reply
            self.setreply(str(r.code), r.enhanced, _milter_text(r.text))
        if decision.action is Action.REJECT:
            return Milter.REJECT
        if decision.action is Action.TEMPFAIL:
            return Milter.TEMPFAIL
        if decision.action is Action.DISCARD:
            return Milter.DISCARD
        return self._no_reply(nr_flag)

    def _guard(self, what: str, nr_flag: int, call: Callable[[], int]) -> int:
        """Run a callback body; an adapter bug tempfails instead of losing mail."""
        try:
            return call()
        except Exception:
            log.exception("internal error in %s callback; tempfailing", what)
            self.chain.metrics.inc("adapter_errors_total", callback=what)
            if self._protocol & nr_flag:
                return Milter.NOREPLY
            try:
                self.setreply("451", "4.3.0", "Internal error in message checks, try again later")
            except Exception:
                pass
            return Milter.TEMPFAIL

    # -- callbacks -----------------------------------------------------------------------

    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        def body() -> int:
            macros = self._macros()
            address = macros.get("{client_addr}")
            port: int | None = None
            if isinstance(hostaddr, tuple) and hostaddr:
                address = address or str(hostaddr[0])
                port = int(hostaddr[1]) if len(hostaddr) > 1 else None
            elif isinstance(hostaddr, str) and family in (socket.AF_INET, socket.AF_INET6):
                address = address or hostaddr
            if macros.get("{client_port}", "").isdigit():
                port = int(macros["{client_port}"])
            name = hostname or macros.get("{client_name}", "")
            if not name or (name.startswith("[") and name.endswith("]")):
                name = "unknown"  # the MTA found no name: say so as Postfix does, unknown[ip]
            connection = Connection(
                client_address=address,
                client_port=port,
                client_name=name,
                family=_family(family),
                mta_hostname=macros.get("j", ""),
                daemon_name=macros.get("{daemon_name}", ""),
            )
            self.session = self.chain.session(connection)
            self.session.update_macros(macros)
            return self._respond(self.session.connect(), Milter.P_NR_CONN)

        return self._guard("connect", Milter.P_NR_CONN, body)

    def hello(self, heloname: str) -> int:
        def body() -> int:
            session = self._session()
            macros = self._macros()
            session.update_macros(macros)
            if "{tls_version}" in macros:
                session.connection = _with_tls(session.connection, macros)
            return self._respond(session.helo(heloname), Milter.P_NR_HELO)

        return self._guard("helo", Milter.P_NR_HELO, body)

    def envfrom(self, mailfrom: str, *args: str) -> int:
        def body() -> int:
            session = self._session()
            self._reset_message()
            macros = self._macros()
            session.update_macros(macros)
            login = macros.get("{auth_authen}")
            auth = (
                Auth(
                    login=login,
                    mechanism=macros.get("{auth_type}", ""),
                    author=macros.get("{auth_author}", ""),
                )
                if login
                else None
            )
            decision = session.mail(
                strip_angle_brackets(mailfrom), args, auth=auth, queue_id=macros.get("i", "")
            )
            return self._respond(decision, Milter.P_NR_MAIL)

        return self._guard("envfrom", Milter.P_NR_MAIL, body)

    def envrcpt(self, to: str, *args: str) -> int:
        def body() -> int:
            session = self._session()
            macros = self._macros()
            session.update_macros(macros)
            session.set_queue_id(macros.get("i", ""))
            return self._respond(session.rcpt(strip_angle_brackets(to), args), Milter.P_NR_RCPT)

        return self._guard("envrcpt", Milter.P_NR_RCPT, body)

    def header(self, name: str, value: str) -> int:
        if not self.leading_space:
            value = " " + value
        field = header_field(name, value)
        self.headers.append(field)
        self.header_bytes_seen += len(field.name) + len(field.raw_value) + 3
        return self._no_reply(Milter.P_NR_HDR)

    def data(self) -> int:
        self.in_header = True
        return self._no_reply(Milter.P_NR_DATA)

    def eoh(self) -> int:
        self.in_header = False
        return self._no_reply(Milter.P_NR_EOH)

    def body(self, chunk: bytes) -> int:
        self.body_size += len(chunk)
        room = self.max_body - self.body_kept
        if room > 0:
            part = chunk[:room]
            self.body_parts.append(part)
            self.body_kept += len(part)
        return self._no_reply(Milter.P_NR_BODY)

    def eom(self) -> int:
        def body() -> int:
            session = self._session()
            macros = self._macros()
            session.update_macros(macros)
            session.set_queue_id(macros.get("i", ""))
            message = Message(
                headers=tuple(self.headers),
                body=b"".join(self.body_parts),
                size=self.body_size,
                body_truncated=self.body_size > self.body_kept,
            )
            decision = session.eom(message)
            try:
                return self._apply(decision)
            finally:
                self._reset_message()

        return self._guard("eom", 0, body)

    def _value(self, value: str) -> str:
        # With SMFIP_HDR_LEADSPC the MTA adds no space after the colon: we must.
        return " " + value if self.leading_space else value

    def _apply(self, decision: Decision) -> int:
        if decision.refuses or decision.action is Action.DISCARD:
            return self._respond(decision)
        # Deletions first, and the last occurrence of a name first: the MTA counts fields as the
        # message is now (Postfix counts a field inserted a moment ago), while the occurrences
        # are those of the message as received.
        deletions = [c for c in decision.headers if isinstance(c, HeaderDelete)]
        if deletions and not self._may(Milter.CHGHDRS, "delete header fields"):
            deletions = []
        for change in sorted(deletions, key=lambda d: (d.name.lower(), -d.occurrence)):
            self.chgheader(change.name, change.occurrence, None)
        for added in decision.added_headers:
            if added.position is HeaderPosition.TOP:
                self.addheader(added.name, self._value(added.value), 0)
            else:
                self.addheader(added.name, self._value(added.value))
        if decision.subject_prefix and self._may(Milter.CHGHDRS, "prefix the Subject"):
            self._prefix_subject(decision.subject_prefix)
        if decision.action is Action.QUARANTINE and self._may(Milter.QUARANTINE, "quarantine"):
            self.quarantine(decision.quarantine_reason or "milterfilters")
        return Milter.ACCEPT

    def _may(self, action: int, what: str) -> bool:
        """Whether the MTA offered ``action``; if not, say so and carry on (the message is still
        accepted with the headers we may add, rather than tempfailed for ever)."""
        if self.offered_actions & action:
            return True
        log.warning("the MTA does not let milters %s; skipped", what)
        self.chain.metrics.inc("milter_actions_unavailable_total", action=what)
        return False

    def _prefix_subject(self, prefix: str) -> None:
        for h in self.headers:
            if h.name.lower() == "subject":
                value = h.raw_value.lstrip(" \t")
                if not value.startswith(prefix):
                    self.chgheader("Subject", 1, self._value(f"{prefix} {value}"))
                return
        self.addheader("Subject", self._value(prefix))

    def _reset_message(self) -> None:
        self.headers = []
        self.header_bytes_seen = 0
        self.in_header = False
        self.body_parts = []
        self.body_kept = 0
        self.body_size = 0

    def abort(self) -> int:
        if self.in_header:
            self._report_header_cut()
        if self.session is not None:
            self.session.abort()
        self._reset_message()
        return Milter.CONTINUE

    def _report_header_cut(self) -> None:
        """An abort after DATA and before the end of the header: the client dropped the
        connection during DATA, or libmilter gave up on the connection (a header field over
        its packet limit). The MTA then applies its default action; say so in our log."""
        queue_id = self.session.queue_id if self.session is not None else ""
        log.warning(
            "queue_id=%s connection ended inside the message header after %d fields (%d bytes): "
            "the MTA applies its milter default action (tempfail with milter_default_action = "
            "tempfail); a client gone during DATA, or a header field longer than libmilter's "
            "packet limit, does this",
            queue_id or "-",
            len(self.headers),
            self.header_bytes_seen,
        )
        self.chain.metrics.inc("milter_header_cut_total")

    def close(self) -> int:
        self.session = None
        return Milter.CONTINUE


def _with_tls(connection: Connection, macros: dict[str, str]) -> Connection:
    from dataclasses import replace

    tls = TlsInfo(
        version=macros.get("{tls_version}", ""),
        cipher=macros.get("{cipher}", ""),
        cipher_bits=macros.get("{cipher_bits}", ""),
        cert_subject=macros.get("{cert_subject}", ""),
        cert_issuer=macros.get("{cert_issuer}", ""),
    )
    return replace(connection, tls=tls)


def make_milter_class(holder: ChainHolder) -> type[ChainMilter]:
    """A ChainMilter subclass bound to ``holder`` (pymilter instantiates it per connection)."""
    return type("BoundChainMilter", (ChainMilter,), {"holder": holder})
