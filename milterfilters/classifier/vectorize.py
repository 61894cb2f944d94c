"""Turn message features into a hashed sparse vector, the same way in training and scoring.

Words are counted, damped (``1 + log count``) and scaled to unit length, so a long message
does not outweigh a short one; every trait is a constant ``trait_weight``. Tokens are hashed
(MurmurHash3, as scikit-learn's :class:`~sklearn.feature_extraction.FeatureHasher`) into
``2**n_features_log2`` columns: no vocabulary to store, nothing to refit on update.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import scipy.sparse
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils import murmurhash3_32

from milterfilters.classifier.features import MessageFeatures, extract_features
from milterfilters.classifier.parsing import DEFAULT_MAX_BYTES, DEFAULT_TIME_BUDGET, parse_mail

#: Bumped whenever :mod:`features` changes what it emits: a model trained on other
#: features is refused.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureSettings:
    """How messages become vectors; stored with a model and checked when it is loaded."""

    feature_version: int = FEATURE_VERSION
    n_features_log2: int = 20
    trait_weight: float = 0.2
    max_bytes: int = DEFAULT_MAX_BYTES

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def token_values(features: MessageFeatures, trait_weight: float) -> dict[str, float]:
    """The weighted tokens of one message, before hashing."""
    counts = Counter(features.words)
    values = {token: 1.0 + math.log(n) for token, n in counts.items()}
    norm = math.sqrt(sum(v * v for v in values.values())) or 1.0
    out = {token: v / norm for token, v in values.items()}
    for trait in features.traits:
        out[trait] = trait_weight
    return out


class Vectorizer:
    """Raw message bytes or features → hashed sparse rows."""

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = settings
        self.n_features = 1 << settings.n_features_log2
        self._hasher = FeatureHasher(n_features=self.n_features, input_type="dict", alternate_sign=False)

    def features(self, raw: bytes, *, time_budget: float = DEFAULT_TIME_BUDGET) -> MessageFeatures:
        return extract_features(parse_mail(raw, max_bytes=self.settings.max_bytes, time_budget=time_budget))

    def transform(self, features: Iterable[MessageFeatures]) -> scipy.sparse.csr_matrix:
        rows = (token_values(f, self.settings.trait_weight) for f in features)
        return self._hasher.transform(rows).tocsr()

    def column(self, token: str) -> int:
        """The column ``token`` hashes to (as FeatureHasher computes it)."""
        h = murmurhash3_32(token.encode("utf-8"), seed=0, positive=False)
        if h == -(2**31):
            return (2**31 - 1 - (self.n_features - 1)) % self.n_features
        return abs(h) % self.n_features
