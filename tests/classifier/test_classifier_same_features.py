"""The classifier's speed-ups change nothing it sees: over 400 corpus messages (the start of the
test split) the words and traits — read from the raw bytes and through the filter — hash as
they did before, and the shipped model gives the same probabilities. The digests were written
by ``tests/classifier/digests.py`` before the speed-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from milterfilters.api import build_chain
from milterfilters.classifier.filter import ClassifierFilter
from tests.classifier.digests import FIXTURE, record
from tests.support.defaultconfig import default_config


def test_features_and_probabilities_unchanged_on_the_corpus(corpus_dir: Path) -> None:
    expected = json.loads(FIXTURE.read_text())
    chain = build_chain(default_config())
    (classifier,) = (link.filter for link in chain.links if isinstance(link.filter, ClassifierFilter))
    changed = []
    for path, before in expected.items():
        now = record(classifier.model, classifier, (corpus_dir / path).read_bytes())
        if now["features"] != before["features"] or now["filter_features"] != before["filter_features"]:
            changed.append(path)
        assert now["p"] == pytest.approx(before["p"], rel=1e-5, abs=1e-9), path
    assert not changed, f"{len(changed)} messages' features changed, e.g. {changed[:3]}"
    assert len(expected) == 400


def test_a_message_is_parsed_once_however_often_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from milterfilters.mail.message import parse_message

    chain = build_chain(default_config())
    (classifier,) = (link.filter for link in chain.links if isinstance(link.filter, ClassifierFilter))
    vectorizer = classifier.model.vectorizer
    calls = []
    real = vectorizer.features
    monkeypatch.setattr(vectorizer, "features", lambda raw, **kw: calls.append(raw) or real(raw, **kw))
    message = parse_message(b"Subject: cheap pills\r\n\r\nbuy now buy now\r\n")
    first = classifier.features(message)
    classifier.probability(message)
    classifier.explain(message)
    assert classifier.features(message) is first and len(calls) == 1
    again = parse_message(b"Subject: cheap pills\r\n\r\nbuy now buy now\r\n")
    assert classifier.features(again) == first and len(calls) == 2  # a new message: its own parse
