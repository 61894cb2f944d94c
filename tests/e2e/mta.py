"""Real MTAs on loopback in front of the real milter: the library behind the e2e fixtures.

:class:`MailStack` ties one :class:`MilterProcess` to one MTA (:class:`PostfixInstance` or
:class:`SendmailInstance`); :class:`StackPool` starts stacks on demand, shares those with equal
settings between tests and stops every daemon by PID at the end. The pieces live in their own
modules and are importable from here too:

* ``milter``: :class:`MilterProcess` runs ``milterfilters run`` and reads its decision log back.
* ``postfix``: a private Postfix delivering every accepted recipient into one :class:`Maildir`.
* ``sendmail``: Sendmail from its unpacked Debian packages, queue-only (:class:`SendmailQueue`).
* ``smtp``: :func:`make_message` and :class:`SmtpClient`, which returns the reply of every stage
  (:class:`SmtpTranscript`), per recipient at RCPT.
* ``mailbox``: wait for a delivered message by Subject or Message-ID.
* ``runtime``: free ports, the runtime folder (/tmp/mf-e2e-*, traversable by user postfix), waiting.
"""

from __future__ import annotations

import dataclasses
import email.message
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .deploy_examples import sendmail_socket, unit_socket_directory
from .mailbox import Mailbox, Maildir, SendmailQueue
from .milter import MilterProcess, Transport, parse_decision_line
from .postfix import PostfixInstance
from .runtime import (
    LOCAL_DOMAIN,
    LOOPBACK,
    SASL_USERS,
    E2EError,
    free_port,
    make_runtime_dir,
    unique_token,
    wait_until,
)
from .sendmail import SendmailInstance, ensure_sendmail_unpacked
from .smtp import GTUBE, Reply, SmtpClient, SmtpTranscript, make_message, message_id_of

__all__ = [
    "GTUBE",
    "LOCAL_DOMAIN",
    "LOOPBACK",
    "SASL_USERS",
    "E2EError",
    "MailStack",
    "Mailbox",
    "Maildir",
    "MilterProcess",
    "PostfixInstance",
    "Reply",
    "SendmailInstance",
    "SendmailQueue",
    "SmtpClient",
    "SmtpTranscript",
    "StackPool",
    "Submission",
    "Transport",
    "free_port",
    "make_message",
    "make_runtime_dir",
    "parse_decision_line",
    "unique_token",
    "wait_until",
]


@dataclass
class MailStack:
    """A running milter and the MTA that uses it."""

    milter: MilterProcess
    mta: PostfixInstance | SendmailInstance

    @property
    def mailbox(self) -> Mailbox:
        """Where accepted mail lands (a Maildir for Postfix, the queue for Sendmail)."""
        return self.mta.maildir if isinstance(self.mta, PostfixInstance) else self.mta.queue

    def send(
        self,
        subject: str,
        *,
        body: str = "Hello from the end-to-end tests.\r\n",
        mail_from: str | None = None,
        rcpt_to: Sequence[str] = ("user@test.example",),
        headers: Mapping[str, str] | None = None,
        message: bytes | None = None,
        helo: str = "client.example",
        xclient: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        source_address: str | None = None,
        bare_lf: bool = False,
    ) -> Submission:
        """Send a message (built from ``subject``/``body``/``headers`` unless ``message`` is given).

        The envelope sender defaults to a unique ``sender-TOKEN@client.example``, so the
        milter's decision for it can be found with :meth:`Submission.decision`; the other
        keywords say how the client presents itself (see :class:`SmtpClient`).
        """
        client = SmtpClient(
            helo=helo, xclient=xclient, auth=auth, source_address=source_address, bare_lf=bare_lf
        )
        token = unique_token()
        mail_from = mail_from or f"sender-{token}@client.example"
        message_id = f"<{token}@client.example>"
        if message is None:
            message = make_message(
                subject, body=body, sender=mail_from, to=rcpt_to[0], message_id=message_id, headers=headers
            )
        else:
            message_id = message_id_of(message) or message_id
        submission = Submission(self, client, subject, mail_from, list(rcpt_to), message_id, message)
        return submission.resend()

    def stop(self) -> None:
        """Stop the MTA, then the milter (each by PID)."""
        try:
            self.mta.stop()
        finally:
            self.milter.stop()


@dataclass
class Submission:
    """One message sent through a :class:`MailStack`, with what came back."""

    stack: MailStack
    client: SmtpClient
    subject: str
    mail_from: str
    rcpt_to: list[str]
    message_id: str
    message: bytes
    transcript: SmtpTranscript = field(default_factory=SmtpTranscript)
    #: where the milter's log stood before this message was sent
    log_offset: int = 0

    def delivered(self, timeout: float = 10.0) -> email.message.Message:
        """Wait for the message (by Message-ID) in the MTA's mailbox and return it."""
        return self.stack.mailbox.wait_for(message_id=self.message_id, timeout=timeout)

    def assert_not_delivered(self, grace: float = 1.0) -> None:
        self.stack.mailbox.assert_absent(message_id=self.message_id, grace=grace)

    def decision(self, stage: str | None = None, timeout: float = 10.0) -> dict[str, str]:
        """The milter's decision log fields for this message: the first decision with its
        envelope sender (and ``stage``, if given) logged since it was sent."""
        return self.stack.milter.wait_for_decision(
            mail_from=self.mail_from, stage=stage, since=self.log_offset, timeout=timeout
        )

    def resend(self) -> Submission:
        """Send the very same message (again): same client, envelope and Message-ID."""
        offset = self.stack.milter.log_size()
        transcript = self.client.send(
            self.stack.mta.port, self.message, mail_from=self.mail_from, rcpt_to=self.rcpt_to
        )
        return dataclasses.replace(self, transcript=transcript, log_offset=offset)


def _queue_socket_path(postfix_base: Path, queue_socket: str) -> Path:
    """Make the socket's directory inside the Postfix queue directory of ``postfix_base`` with the
    group and mode of examples/milterfilters.service's ExecStartPre (the owner stays root: the
    test milter runs as root); return the socket's path."""
    made = unit_socket_directory()
    path = postfix_base / "spool" / queue_socket
    path.parent.mkdir(parents=True)
    shutil.chown(path.parent, group=made.group)
    path.parent.chmod(made.mode)
    return path


class StackPool:
    """Starts milter + MTA stacks on demand under one runtime directory.

    Stacks with the same configuration are shared (started once); ``private=True`` gives a
    stack of its own to a test that breaks it (e.g. kills the milter). :meth:`close` stops
    every daemon by PID, stacks in parallel since a milter takes seconds to stop.
    """

    def __init__(self, runtime: Path, *, milter_command: Sequence[str] | None = None) -> None:
        self.runtime = runtime
        self.milter_command = milter_command
        self._shared: dict[tuple[object, ...], MailStack] = {}
        self._all: list[MailStack] = []
        self._lock = threading.Lock()
        self._counter = 0

    def _workdir(self, kind: str) -> Path:
        with self._lock:
            self._counter += 1
            path = self.runtime / f"{kind}-{self._counter}"
        path.mkdir(mode=0o755)
        return path

    def postfix(
        self,
        config: str = "",
        *,
        relay_all: bool = False,
        main_cf: Mapping[str, str] | None = None,
        transport: Transport = "unix",
        private: bool = False,
        start_milter: bool = True,
        chroot: bool = False,
        queue_socket: str | None = None,
    ) -> MailStack:
        """A running private Postfix whose smtpd uses a milter with TOML ``config``.

        ``start_milter=False`` leaves the milter stopped (the stack is then private): the MTA
        meets an absent milter until the test calls ``stack.milter.start()``.
        ``chroot=True`` runs Postfix's services chrooted as Debian does; ``queue_socket`` puts
        the milter's unix socket at that path relative to Postfix's queue directory (Postfix
        gets ``unix:QUEUE_SOCKET``), in a directory made as examples/milterfilters.service
        makes it.
        """
        key = ("postfix", config, relay_all, tuple(sorted((main_cf or {}).items())), transport, chroot)
        key += (queue_socket,)

        def build() -> MailStack:
            base = self._workdir("postfix")
            socket_path = _queue_socket_path(base / "mta", queue_socket) if queue_socket else None
            milter = self._milter(base, config, transport, socket_path)
            spec = f"unix:{queue_socket}" if queue_socket else milter.postfix_spec
            mta = PostfixInstance(
                base / "mta", milter=spec, relay_all=relay_all, main_cf=main_cf, chroot=chroot
            )
            return MailStack(milter, mta)

        return self._get(key, build, private, start_milter)

    def sendmail(
        self,
        config: str = "",
        *,
        transport: Transport = "unix",
        private: bool = False,
        start_milter: bool = True,
        milter_mc: Sequence[str] | None = None,
    ) -> MailStack:
        """A running Sendmail whose INPUT_MAIL_FILTER is a milter with TOML ``config``
        (``start_milter`` as for :meth:`postfix`). ``milter_mc`` gives the .mc's milter lines
        (an example's); its ``S=local:/run/…`` socket path is used as written."""
        root = ensure_sendmail_unpacked()

        def build() -> MailStack:
            base = self._workdir("sendmail")
            run_dir = socket_path = None
            if milter_mc:
                run_dir = base / "run"
                socket_path = run_dir / sendmail_socket(list(milter_mc)).relative_to("/run")
                socket_path.parent.mkdir(mode=0o750, parents=True)
            milter = self._milter(base, config, transport, socket_path)
            mta = SendmailInstance(
                base / "mta", milter=milter.sendmail_spec, root=root, milter_mc=milter_mc, run_dir=run_dir
            )
            return MailStack(milter, mta)

        key = ("sendmail", config, transport, tuple(milter_mc or ()))
        return self._get(key, build, private, start_milter)

    def _milter(
        self, base: Path, config: str, transport: Transport, socket_path: Path | None
    ) -> MilterProcess:
        return MilterProcess(
            base / "milter", config, transport=transport, command=self.milter_command, socket_path=socket_path
        )

    def _get(
        self, key: tuple[object, ...], build: Callable[[], MailStack], private: bool, start_milter: bool
    ) -> MailStack:
        private = private or not start_milter
        if not private and key in self._shared:
            return self._shared[key]
        stack = build()
        self._all.append(stack)
        if start_milter:
            stack.milter.start()
        stack.mta.start()
        if not private:
            self._shared[key] = stack
        return stack

    def close(self) -> None:
        """Stop every stack this pool started, in parallel; raise the first failure afterwards."""
        stacks, self._all, self._shared = self._all, [], {}
        if not stacks:
            return
        with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
            results = [pool.submit(stack.stop) for stack in stacks]
        for result in results:
            result.result()
