"""Where training and evaluation mail comes from: Maildirs, mbox files, folders of message
files, and tar archives (``.tar``, ``.tar.gz``, ``.tar.xz``) read as a stream.

Every source yields ``(name, raw bytes)`` one message at a time, so memory stays bounded
whatever the size of the archive. :class:`Deduplicator` drops repeated messages.

Only regular files are read: a FIFO, a device, a socket or a dangling link found in a folder
(or an archive member of such a kind) is skipped and counted in :class:`Skipped`, never opened
in a way that could block — a FIFO would otherwise hang ``train`` for ever. Only real
messages count: an empty file (a 0-byte mbox too) and a file that does not start with a
header field (:func:`looks_like_mail`) are skipped and recorded the same way.

:func:`count_corpus` tells, before reading, how many messages the sources hold (folders by
their file names, mbox files and archives by a scan), so progress has a total.
"""

from __future__ import annotations

import csv
import hashlib
import io
import mailbox
import os
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

#: Messages larger than this are read only up to this many bytes (features use a prefix).
MAX_READ_BYTES = 1 << 20

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


class SourceError(Exception):
    """A path that cannot be read as mail."""


@dataclass(frozen=True)
class LabelledMessage:
    """One message read from a source, with its label (``ham`` or ``spam``)."""

    name: str
    label: str
    raw: bytes


@dataclass
class Skipped:
    """What a reader passed over: ``(name, reason)`` per entry that is not a readable regular file."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, reason: str) -> None:
        self.entries.append((name, reason))

    @property
    def count(self) -> int:
        return len(self.entries)

    def summary(self, shown: int = 3) -> str:
        """``N skipped (...), e.g. a (FIFO), b (empty)``; "" when none."""
        if not self.entries:
            return ""
        examples = ", ".join(f"{name} ({reason})" for name, reason in self.entries[:shown])
        more = ", ..." if self.count > shown else ""
        return f"{self.count} skipped ({SKIPPED_KINDS}), e.g. {examples}{more}"


#: what :class:`Skipped` holds, in a phrase
SKIPPED_KINDS = "empty, not mail, or not a readable regular file"

#: a header field's name and colon (RFC 5322 2.2: printable ASCII but the colon), at the very start
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def looks_like_mail(raw: bytes) -> bool:
    """Whether ``raw`` starts like a message: a header field, after an mbox ``From `` line if any.

    An empty file, a blank one, a picture or a text without a header is not mail.
    """
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    return _FIELD_START.match(raw) is not None


_KINDS = (
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "directory"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open_regular(path: Path, skipped: Skipped) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file (links followed), else ``None`` with
    the reason recorded. Special files are never opened (a device may act on open); the open is
    non-blocking and checked again, so a file swapped for a FIFO meanwhile cannot block either."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            skipped.add(str(path), _kind(mode))
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        skipped.add(str(path), "dangling link" if path.is_symlink() else "no such file or directory")
        return None
    except OSError as e:
        skipped.add(str(path), e.strerror or "unreadable")
        return None
    f = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        skipped.add(str(path), _kind(mode))
        return None
    return f


def _read_prefix(path: Path, skipped: Skipped) -> bytes | None:
    f = _open_regular(path, skipped)
    if f is None:
        return None
    with f:
        return f.read(MAX_READ_BYTES)


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _wanted(name: str) -> bool:
    """A file name that may hold a message (hidden files and split tables are not read)."""
    return not (name.startswith(".") or name.endswith(".tsv"))


def _walk(root: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` in sorted order, leaving out hidden folders and Maildir's ``tmp``."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "tmp")
        yield dirpath, dirnames, sorted(filenames)


def _iter_folder(root: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    for dirpath, _, filenames in _walk(root):
        for name in filenames:
            if not _wanted(name):
                continue
            path = Path(dirpath) / name
            raw = _read_prefix(path, skipped)
            if raw is not None:
                yield str(path), raw


def _iter_mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            with box.get_file(key) as f:
                raw = f.read(MAX_READ_BYTES)
            yield f"{path}#{key}", raw
    finally:
        box.close()


def _iter_tar(path: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    """Regular files of a tar archive, in archive order, relative to its top folder."""
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    if not member.isdir():
                        skipped.add(f"{path}#{member.name}", _tar_kind(member))
                    continue
                inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if not _wanted(inner.rsplit("/", 1)[-1]):
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    yield inner, f.read(MAX_READ_BYTES)
    except (tarfile.TarError, EOFError) as e:
        raise SourceError(f"{path}: not a readable tar archive: {e}") from e


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "link"
    if member.isfifo():
        return "FIFO"
    return "device" if member.isdev() else "not a regular file"


def iter_messages(
    path: str | os.PathLike[str], skipped: Skipped | None = None
) -> Iterator[tuple[str, bytes]]:
    """Messages at ``path``: a Maildir, a folder of files, an mbox, a tar archive or one file.

    What is not a regular file is passed over and recorded in ``skipped``.
    """
    skipped = Skipped() if skipped is None else skipped
    for name, raw in _iter_entries(Path(path), skipped):
        if looks_like_mail(raw):
            yield name, raw
        else:
            skipped.add(name, "not mail" if raw.strip() else "empty")


def _iter_entries(p: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    """Every regular file (mbox entry, archive member) at ``p``, mail or not."""
    if p.is_dir():
        for folder in _folders(p):
            yield from _iter_folder(folder, skipped)
    elif p.exists() or p.is_symlink():
        yield from _iter_file(p, skipped)
    else:
        raise SourceError(f"{p}: no such file or directory")


def _folders(p: Path) -> tuple[Path, ...]:
    return (p / "cur", p / "new") if is_maildir(p) else (p,)


def count_messages(path: str | os.PathLike[str]) -> int:
    """How many entries :func:`iter_messages` will read at ``path`` (an upper bound of what it
    yields: entries that turn out empty or not mail are skipped then). Folders are counted by
    name, mbox files and archives by a scan; nothing blocks on a special file."""
    p = Path(path)
    if p.is_dir():
        return sum(
            len([n for n in names if _wanted(n)])
            for folder in _folders(p)
            for _, _, names in _walk(folder)
        )
    f = _open_regular(p, Skipped()) if p.exists() else None
    if f is None:
        return 0
    with f:
        start = b"" if p.name.endswith(_TAR_SUFFIXES) else f.read(5)
    if p.name.endswith(_TAR_SUFFIXES):
        return _count_tar(p)
    if start.startswith(b"From "):
        box = mailbox.mbox(str(p), create=False)
        try:
            return len(box.keys())
        finally:
            box.close()
    return 1


def _count_tar(path: Path) -> int:
    try:
        with tarfile.open(path, mode="r|*") as tar:
            return sum(1 for m in tar if m.isfile() and _wanted(m.name.rsplit("/", 1)[-1]))
    except (tarfile.TarError, EOFError, OSError):
        return 0  # reading it says what is wrong


def count_corpus(
    ham: tuple[str, ...] = (),
    spam: tuple[str, ...] = (),
    corpus: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
) -> int:
    """How many messages :func:`iter_corpus` will read from these sources (see :func:`count_messages`);
    a labelled corpus counts its labelled rows."""
    total = sum(count_messages(p) for p in (*ham, *spam) if Path(p).exists() or Path(p).is_symlink())
    return total + (len(labels) if corpus and labels else 0)


def _iter_file(p: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    f = _open_regular(p, skipped)
    if f is None:
        return
    with f:
        start = b"" if p.name.endswith(_TAR_SUFFIXES) else f.read(MAX_READ_BYTES)
    if p.name.endswith(_TAR_SUFFIXES):
        yield from _iter_tar(p, skipped)
    elif start.startswith(b"From "):
        yield from _iter_mbox(p)
    else:
        yield str(p), start


def read_split_file(path: str | os.PathLike[str], split: str) -> dict[str, str]:
    """``path → label`` for the rows of a split TSV (columns path, label, split) in ``split``."""
    f = _open_regular(Path(path), failed := Skipped())
    if f is None:
        raise SourceError(f"{path}: {failed.entries[0][1]}")
    with f:
        text = f.read().decode("utf-8", errors="replace")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows or not {"path", "label", "split"} <= set(rows[0]):
        raise SourceError(f"{path}: expected a TSV with columns path, label, split")
    chosen = {r["path"]: r["label"] for r in rows if r["split"] == split}
    if not chosen:
        raise SourceError(f"{path}: no rows with split {split!r}")
    bad = {label for label in chosen.values() if label not in ("ham", "spam")}
    if bad:
        raise SourceError(f"{path}: labels must be ham or spam, found {sorted(bad)}")
    return chosen


def iter_corpus(
    ham: tuple[str, ...] = (),
    spam: tuple[str, ...] = (),
    corpus: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
    skipped: Skipped | None = None,
) -> Iterator[LabelledMessage]:
    """Labelled messages: every message under ``ham`` and ``spam``, and the messages of
    ``corpus`` (archives or folders) whose relative path ``labels`` lists. Entries that are
    not regular files are recorded in ``skipped``."""
    skipped = Skipped() if skipped is None else skipped
    for label, paths in (("ham", ham), ("spam", spam)):
        for path in paths:
            for name, raw in iter_messages(path, skipped):
                yield LabelledMessage(name, label, raw)
    for path in corpus:
        if labels is None:
            raise SourceError("a corpus needs a split file that labels its messages")
        root = Path(path)
        for name, raw in iter_messages(path, skipped):
            key = os.path.relpath(name, root) if root.is_dir() else name
            if key in labels:
                yield LabelledMessage(name, labels[key], raw)


class Deduplicator:
    """Remembers a 16-byte digest per message to drop exact repeats (mbox line kept out)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self.dropped = 0

    def is_new(self, raw: bytes) -> bool:
        body = raw.partition(b"\n")[2] if raw.startswith(b"From ") else raw
        digest = hashlib.blake2b(body.replace(b"\r\n", b"\n"), digest_size=16).digest()
        if digest in self._seen:
            self.dropped += 1
            return False
        self._seen.add(digest)
        return True
