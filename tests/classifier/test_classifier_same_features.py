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
