"""The default chain over a sample of the real corpus: the classifier never errors, stays
fast, and tells spam from ham. The corpus is unpacked at test time (``corpus_dir``)."""

from __future__ import annotations

import time
from pathlib import Path

from milterfilters import build_chain, evaluate
from milterfilters.classifier.sources import iter_messages
from milterfilters.config import config_from_dict

# nothing listens on port 9: DNS lookups of the other filters fail at once, offline
OFFLINE = {"dns": {"nameservers": ["127.0.0.1:9"], "timeout": 0.5}}


def test_default_chain_classifies_real_mail_without_errors(corpus_dir: Path) -> None:
    messages = [(name, raw) for name, raw in iter_messages(corpus_dir)][::20]
    assert len(messages) >= 300
    chain = build_chain(config_from_dict(OFFLINE))
    started = time.perf_counter()
    outcomes = {name: evaluate(chain, raw, recipients=["user@example.org"]) for name, raw in messages}
    elapsed = time.perf_counter() - started
    errors = {name: o.decision.errors for name, o in outcomes.items() if o.decision.errors}
    assert not errors
    assert chain.metrics.get("filter_errors_total", filter="classifier") == 0
    spam = [o for name, o in outcomes.items() if "/spam/" in name]
    ham = [o for name, o in outcomes.items() if "/ham/" in name]
    caught = sum("CLASSIFIER_SPAM" in o.decision.symbols for o in spam) / len(spam)
    flagged = sum("CLASSIFIER_SPAM" in o.decision.symbols for o in ham) / len(ham)
    assert caught > 0.8 and flagged < 0.05  # the sample includes training mail: a sanity check only
    assert elapsed / len(messages) < 0.05


def test_the_slow_standard_library_message_is_cheap(corpus_dir: Path) -> None:
    # spam_2/00471…: 5.6 s in email's default policy; compat32 with budgets takes milliseconds
    from milterfilters.classifier.features import extract_features
    from milterfilters.classifier.parsing import parse_mail

    (path,) = (corpus_dir / "spam" / "spam_2").glob("00471.*")
    started = time.perf_counter()
    features = extract_features(parse_mail(path.read_bytes()))
    assert time.perf_counter() - started < 1.5  # generous: the machine may be busy
    assert features.words and "@html_only" in features.traits
