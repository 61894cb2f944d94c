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
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

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
    ) -> MailStack:
        """A running private Postfix whose smtpd uses a milter with TOML ``config``.

        ``start_milter=False`` leaves the milter stopped (the stack is then private): the MTA
        meets an absent milter until the test calls ``stack.milter.start()``.
        """
        key = ("postfix", config, relay_all, tuple(sorted((main_cf or {}).items())), transport)

        def build() -> MailStack:
            base = self._workdir("postfix")
            milter = MilterProcess(base / "milter", config, transport=transport, command=self.milter_command)
            mta = PostfixInstance(
                base / "mta", milter=milter.postfix_spec, relay_all=relay_all, main_cf=main_cf
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
    ) -> MailStack:
        """A running Sendmail whose INPUT_MAIL_FILTER is a milter with TOML ``config``
        (``start_milter`` as for :meth:`postfix`)."""
        root = ensure_sendmail_unpacked()

        def build() -> MailStack:
            base = self._workdir("sendmail")
            milter = MilterProcess(base / "milter", config, transport=transport, command=self.milter_command)
            mta = SendmailInstance(base / "mta", milter=milter.sendmail_spec, root=root)
            return MailStack(milter, mta)

        return self._get(("sendmail", config, transport), build, private, start_milter)

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
