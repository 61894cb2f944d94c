"""Where accepted mail lands: a Maildir (Postfix) or a Sendmail queue, searched by Subject or
Message-ID, with waiting for a delivery (or for its absence)."""

from __future__ import annotations

import email
import email.message
import email.policy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from .runtime import wait_until


def _header_matches(msg: email.message.Message, subject: str | None, message_id: str | None) -> bool:
    if subject is not None and str(msg.get("Subject", "")) != subject:
        return False
    return message_id is None or str(msg.get("Message-ID", "")).strip() == message_id.strip()


class Mailbox(ABC):
    """Where an MTA puts accepted mail, one file per message (parsed once), searched by
    Subject and/or Message-ID."""

    def __init__(self) -> None:
        self._cache: dict[Path, email.message.Message] = {}

    @abstractmethod
    def _files(self) -> Iterator[Path]:
        """The files of the complete messages."""

    @abstractmethod
    def _parse(self, path: Path) -> email.message.Message | None:
        """The message in ``path``, or None if it vanished meanwhile."""

    def messages(self) -> list[email.message.Message]:
        """Every message currently delivered (parsed; files read once)."""
        out = []
        for path in sorted(self._files()):
            if path not in self._cache:
                parsed = self._parse(path)
                if parsed is None:
                    continue
                self._cache[path] = parsed
            out.append(self._cache[path])
        return out

    def find(
        self, *, subject: str | None = None, message_id: str | None = None
    ) -> email.message.Message | None:
        """The delivered message with this Subject and/or Message-ID, or None."""
        if subject is None and message_id is None:
            raise ValueError("give a subject or a message_id")
        for msg in self.messages():
            if _header_matches(msg, subject, message_id):
                return msg
        return None

    def wait_for(
        self, *, subject: str | None = None, message_id: str | None = None, timeout: float = 10.0
    ) -> email.message.Message:
        """Wait until the message is delivered and return it; raise TimeoutError if it never is."""
        found: list[email.message.Message] = []

        def delivered() -> bool:
            msg = self.find(subject=subject, message_id=message_id)
            if msg is not None:
                found.append(msg)
            return bool(found)

        wait_until(delivered, timeout, f"delivery of subject={subject!r} message_id={message_id!r}")
        return found[0]

    def assert_absent(
        self, *, subject: str | None = None, message_id: str | None = None, grace: float = 1.0
    ) -> None:
        """Assert that the message is not delivered, giving the MTA ``grace`` seconds to prove otherwise."""
        try:
            msg = self.wait_for(subject=subject, message_id=message_id, timeout=grace)
        except TimeoutError:
            return
        raise AssertionError(f"message was delivered but should not have been:\n{msg}")


class Maildir(Mailbox):
    """A Maildir that virtual(8) delivers into (reads ``new/`` and ``cur/``)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _files(self) -> Iterator[Path]:
        for sub in ("new", "cur"):
            folder = self.path / sub
            if folder.is_dir():
                yield from folder.iterdir()

    def _parse(self, path: Path) -> email.message.Message | None:
        try:
            return email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        except FileNotFoundError:  # moved from new/ to cur/ meanwhile
            return None


class SendmailQueue(Mailbox):
    """Sendmail's queue directory in queue-only mode: each message is a qf (envelope and
    headers) plus a df (body) file; a message is complete once its qf file exists."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _files(self) -> Iterator[Path]:
        if self.path.is_dir():
            yield from self.path.glob("qf*")

    def _parse(self, path: Path) -> email.message.Message | None:
        try:
            # macro references are stored as byte 0x81 + name: show them as $name
            control = path.read_bytes().decode("latin-1").replace("\x81", "$")
            body = (path.parent / ("df" + path.name[2:])).read_bytes()
        except FileNotFoundError:
            return None
        return email.message_from_bytes(
            qf_headers(control).encode("latin-1") + b"\n" + body, policy=email.policy.compat32
        )


def qf_headers(control: str) -> str:
    """The header block of a Sendmail qf file: its ``H`` lines without the ``?flags?`` conditions
    (a header whose condition is not met would not be written; tests see all of them)."""
    out: list[str] = []
    in_header = False
    for line in control.splitlines():
        if line.startswith("H"):
            text = line[1:]
            if text.startswith("?"):
                text = text[text.index("?", 1) + 1 :]
            out.append(text)
            in_header = True
        elif in_header and line[:1] in (" ", "\t"):
            out.append(line)
        else:
            in_header = False
    return "\n".join(out) + "\n"
