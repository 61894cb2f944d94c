"""The default chain over a sample of the real corpus: no message makes anything fail.

The corpus is unpacked at test time from ``shared/corpora`` beside the project (no corpus
message is kept in the repository).
"""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

from milterfilters import build_chain, evaluate
from milterfilters.classifier.sources import iter_messages

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    Path(os.environ.get("MILTERFILTERS_SHARED", ROOT.parent / "shared")),
    ROOT.parent.parent / "shared",
]


def corpus_archive() -> Path:
    for shared in CANDIDATES:
        archive = shared / "corpora" / "spamassassin.tar.xz"
        if archive.is_file():
            return archive
    raise AssertionError(f"corpus archive not found under {[str(c) for c in CANDIDATES]}")


def test_default_chain_judges_real_mail_without_errors(tmp_path: Path) -> None:
    with tarfile.open(corpus_archive()) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/MANIFEST" not in m.name]
        sample = members[::20]
        tar.extractall(tmp_path, members=sample, filter="data")
    messages = list(iter_messages(tmp_path))
    assert len(messages) >= 290
    chain = build_chain()
    started = time.perf_counter()
    outcomes = {name: evaluate(chain, raw, recipients=["user@example.org"]) for name, raw in messages}
    elapsed = time.perf_counter() - started
    errors = {name: o.decision.errors for name, o in outcomes.items() if o.decision.errors}
    assert not errors
    assert chain.metrics.total("filter_errors_total") == 0
    spam = [o for name, o in outcomes.items() if "/spam/" in name]
    ham = [o for name, o in outcomes.items() if "/ham/" in name]
    caught = sum("CLASSIFIER_SPAM" in o.decision.symbols for o in spam) / len(spam)
    flagged = sum("CLASSIFIER_SPAM" in o.decision.symbols for o in ham) / len(ham)
    assert caught > 0.8 and flagged < 0.05  # the sample includes training mail: a sanity check only
    assert elapsed / len(messages) < 0.05
