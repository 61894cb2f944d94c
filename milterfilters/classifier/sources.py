"""Where training and evaluation mail comes from: Maildirs, mbox files, folders of message
files, and tar archives (``.tar``, ``.tar.gz``, ``.tar.xz``) read as a stream.

Every source yields ``(name, raw bytes)`` one message at a time, so memory stays bounded
whatever the size of the archive. :class:`Deduplicator` drops repeated messages.
"""

from __future__ import annotations

import csv
import hashlib
import mailbox
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

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


def _read_prefix(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_READ_BYTES)


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "tmp")
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".tsv"):
                continue
            path = Path(dirpath) / name
            yield str(path), _read_prefix(path)


def _iter_mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            with box.get_file(key) as f:
                raw = f.read(MAX_READ_BYTES)
            yield f"{path}#{key}", raw
    finally:
        box.close()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    """Regular files of a tar archive, in archive order, relative to its top folder."""
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
                base = inner.rsplit("/", 1)[-1]
                if base.startswith(".") or base.endswith(".tsv"):
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    yield inner, f.read(MAX_READ_BYTES)
    except (tarfile.TarError, EOFError) as e:
        raise SourceError(f"{path}: not a readable tar archive: {e}") from e


def iter_messages(path: str | os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """Messages at ``path``: a Maildir, a folder of files, an mbox, a tar archive or one file."""
    p = Path(path)
    if p.is_dir():
        if is_maildir(p):
            for sub in ("cur", "new"):
                yield from _iter_folder(p / sub)
        else:
            yield from _iter_folder(p)
    elif p.is_file():
        if p.name.endswith(_TAR_SUFFIXES):
            yield from _iter_tar(p)
        elif _is_mbox(p):
            yield from _iter_mbox(p)
        else:
            yield str(p), _read_prefix(p)
    else:
        raise SourceError(f"{p}: no such file or directory")


def read_split_file(path: str | os.PathLike[str], split: str) -> dict[str, str]:
    """``path → label`` for the rows of a split TSV (columns path, label, split) in ``split``."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from e
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
) -> Iterator[LabelledMessage]:
    """Labelled messages: every message under ``ham`` and ``spam``, and the messages of
    ``corpus`` (archives or folders) whose relative path ``labels`` lists."""
    for label, paths in (("ham", ham), ("spam", spam)):
        for path in paths:
            for name, raw in iter_messages(path):
                yield LabelledMessage(name, label, raw)
    for path in corpus:
        if labels is None:
            raise SourceError("a corpus needs a split file that labels its messages")
        root = Path(path)
        for name, raw in iter_messages(path):
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
