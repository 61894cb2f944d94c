"""Accuracy figures for a scored, labelled set of messages."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass(frozen=True)
class Evaluation:
    """What ``milterfilters evaluate`` reports."""

    ham: int
    spam: int
    auc: float
    threshold: float
    false_positives: int  # ham scored at or above the threshold
    false_negatives: int  # spam scored below it
    recall_at_low_fp: float  # spam recall with at most ``max_fp_rate`` of ham misclassified
    max_fp_rate: float = 0.001

    @property
    def one_minus_roca_percent(self) -> float:
        return 100.0 * (1.0 - self.auc)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self) | {"one_minus_roca_percent": self.one_minus_roca_percent}


def recall_at_fp_rate(labels: np.ndarray, scores: np.ndarray, max_fp_rate: float) -> float:
    """Share of spam scored strictly above every ham score but the allowed few."""
    ham = np.sort(scores[labels == 0])
    spam = scores[labels == 1]
    if not len(spam):
        return math.nan
    allowed = math.floor(max_fp_rate * len(ham))
    if allowed >= len(ham):
        return 1.0
    cut = ham[len(ham) - 1 - allowed]
    return float(np.mean(spam > cut))


def summarize(
    labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5, max_fp_rate: float = 0.001
) -> Evaluation:
    """Figures for spam probabilities ``scores`` of messages labelled 1 (spam) / 0 (ham)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    both = 0 < labels.sum() < len(labels)
    return Evaluation(
        ham=int((labels == 0).sum()),
        spam=int((labels == 1).sum()),
        auc=float(roc_auc_score(labels, scores)) if both else math.nan,
        threshold=threshold,
        false_positives=int(((labels == 0) & (scores >= threshold)).sum()),
        false_negatives=int(((labels == 1) & (scores < threshold)).sum()),
        recall_at_low_fp=recall_at_fp_rate(labels, scores, max_fp_rate),
        max_fp_rate=max_fp_rate,
    )
