"""Turn message features into a hashed sparse vector, the same way in training and scoring.

Words are counted, damped (``1 + log count``) and scaled to unit length, so a long message
does not outweigh a short one — but never by less than ``1 / min_word_norm``, so the few words
of a two-line note are not each blown up to the weight of a whole letter. Every trait is a
constant ``trait_weight``. Tokens are hashed
(CRC-32 of their UTF-8 bytes, low bits) into ``2**n_features_log2`` columns: no vocabulary to
store, nothing to refit on update. Scoring needs only NumPy — not scikit-learn, whose import
alone would double the milter's resident memory.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from milterfilters.classifier.features import MessageFeatures, extract_features
from milterfilters.classifier.parsing import DEFAULT_MAX_BYTES, DEFAULT_TIME_BUDGET, parse_mail

if TYPE_CHECKING:
    import scipy.sparse

#: Bumped whenever :mod:`features` changes what it emits: a model trained on other
#: features is refused.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureSettings:
    """How messages become vectors; stored with a model and checked when it is loaded."""

    feature_version: int = FEATURE_VERSION
    n_features_log2: int = 20
    trait_weight: float = 0.2
    min_word_norm: float = 8.0
    max_bytes: int = DEFAULT_MAX_BYTES

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def token_values(features: MessageFeatures, settings: FeatureSettings) -> dict[str, float]:
    """The weighted tokens of one message, before hashing."""
    counts = Counter(features.words)
    values = {token: 1.0 + math.log(n) for token, n in counts.items()}
    norm = max(math.sqrt(sum(v * v for v in values.values())), settings.min_word_norm)
    out = {token: v / norm for token, v in values.items()}
    for trait in features.traits:
        out[trait] = settings.trait_weight
    return out


class Vectorizer:
    """Raw message bytes or features → hashed sparse rows."""

    def __init__(self, settings: FeatureSettings) -> None:
        self.settings = settings
        self.n_features = 1 << settings.n_features_log2
        self._mask = self.n_features - 1

    def features(self, raw: bytes, *, time_budget: float = DEFAULT_TIME_BUDGET) -> MessageFeatures:
        return extract_features(parse_mail(raw, max_bytes=self.settings.max_bytes, time_budget=time_budget))

    def column(self, token: str) -> int:
        """The column ``token`` hashes to."""
        return zlib.crc32(token.encode("utf-8")) & self._mask

    def row(self, features: MessageFeatures) -> tuple[np.ndarray, np.ndarray]:
        """One message as (columns, values); colliding tokens appear as repeated columns."""
        values = token_values(features, self.settings)
        mask = self._mask
        columns = np.fromiter(
            (zlib.crc32(t.encode("utf-8")) & mask for t in values), dtype=np.int32, count=len(values)
        )
        return columns, np.fromiter(values.values(), dtype=np.float32, count=len(values))

    def transform(self, features: Iterable[MessageFeatures]) -> scipy.sparse.csr_matrix:
        """Many messages as a CSR matrix (for training)."""
        import scipy.sparse

        rows = [self.row(f) for f in features]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(c) for c, _ in rows])
        indices = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, np.int32)
        data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0, np.float32)
        matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features))
        matrix.sum_duplicates()
        return matrix
