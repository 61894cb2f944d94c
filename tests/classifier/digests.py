"""Digests of what the classifier makes of a message, for the before/after check
(``test_classifier_same_features``): ``python -m tests.classifier.digests`` rewrites the
fixture ``data/feature_digests.json`` from the corpus test split — only when the features are
meant to change (a new ``FEATURE_VERSION``). The fixture holds digests and probabilities, no
message text."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from milterfilters.classifier.features import MessageFeatures
from milterfilters.classifier.filter import ClassifierFilter
from milterfilters.classifier.model import Model
from milterfilters.mail.message import parse_message

FIXTURE = Path(__file__).with_name("data") / "feature_digests.json"
#: messages of the test split (in archive order) the fixture covers
COUNT = 400


def digest(features: MessageFeatures) -> str:
    """A short hash of a message's words (with their counts) and traits, in any order (some traits
    come from iterating a set of strings, whose order changes with the hash seed)."""
    text = json.dumps([sorted(features.words), sorted(features.traits)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record(model: Model, classifier: ClassifierFilter, raw: bytes) -> dict[str, object]:
    """What the fixture keeps of one message: from the raw bytes and through the filter."""
    features = model.vectorizer.features(raw)
    through_filter = classifier.features(parse_message(raw))
    return {
        "features": digest(features),
        "filter_features": digest(through_filter),
        "p": model.probability(features),
    }


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from corpus import load_split

    from milterfilters.api import build_chain
    from tests.support.defaultconfig import default_config

    chain = build_chain(default_config())
    (classifier,) = (link.filter for link in chain.links if isinstance(link.filter, ClassifierFilter))
    records = {m.path: record(classifier.model, classifier, m.raw) for m in load_split("test")[:COUNT]}
    FIXTURE.write_text(json.dumps(records, indent=0, sort_keys=True) + "\n")
    print(f"{len(records)} messages written to {FIXTURE}")


if __name__ == "__main__":
    main()
