"""Shared by the benchmarks: the project's corpus split, read straight from the archive."""

from __future__ import annotations

import email.utils
import os
from dataclasses import dataclass
from pathlib import Path

from milterfilters.classifier.sources import iter_corpus, read_split_file

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MILTERFILTERS_SHARED", ROOT.parent / "shared"))
if not (SHARED / "corpora").is_dir() and (ROOT.parent.parent / "shared" / "corpora").is_dir():
    SHARED = ROOT.parent.parent / "shared"  # a git worktree one level deeper
ARCHIVE = SHARED / "corpora" / "spamassassin.tar.xz"
SPLIT = SHARED / "corpora" / "spamassassin-split.tsv"


@dataclass(frozen=True)
class Mail:
    path: str  # relative to the corpus root, as in the split file
    label: str
    raw: bytes

    @property
    def is_spam(self) -> bool:
        return self.label == "spam"

    def date(self) -> float:
        """Delivery time from the mbox ``From `` line, else the Date header; 0 if neither parses."""
        first = self.raw.split(b"\n", 1)[0]
        candidates = []
        if first.startswith(b"From "):
            parts = first.decode("latin-1").split(None, 2)
            if len(parts) == 3:
                candidates.append(parts[2])
        head = self.raw.split(b"\n\n", 1)[0].decode("latin-1")
        for line in head.splitlines():
            if line.lower().startswith("date:"):
                candidates.append(line[5:])
                break
        for text in candidates:
            try:
                return email.utils.parsedate_to_datetime(text.strip()).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
        return 0.0


def load_split(split: str) -> list[Mail]:
    """The messages of one split (``train`` or ``test``), in archive order."""
    labels = read_split_file(SPLIT, split)
    return [Mail(m.name, m.label, m.raw) for m in iter_corpus(corpus=(str(ARCHIVE),), labels=labels)]


def load_all() -> list[Mail]:
    return load_split("train") + load_split("test")
