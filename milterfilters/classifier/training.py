"""Training and updating a model from labelled mail.

Messages are streamed from their sources one at a time; only their hashed feature rows are
kept, at most ``max_per_class`` per class (a uniform reservoir sample beyond that), so
memory stays bounded however large the archive. The estimator — L2-regularised logistic
regression on hashed tokens, ``C=100``, traits weighted 0.2 — was chosen by 5-fold
cross-validation on the train split (see ``models/MODEL_CARD.md``). Probabilities are
calibrated by Platt scaling on out-of-fold margins.

``update`` adds mail to an existing model: it finds the weights closest to the old ones
(an L2 pull towards them instead of towards zero) that fit the new messages.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from milterfilters.classifier.model import Calibration, Model, history
from milterfilters.classifier.sources import Deduplicator, LabelledMessage
from milterfilters.classifier.vectorize import FeatureSettings, Vectorizer

log = logging.getLogger("milterfilters.classifier")

#: Inverse regularisation strength, chosen by cross-validation on the train split.
DEFAULT_C = 100.0
#: Feature rows kept per class; beyond that a uniform reservoir sample is kept.
DEFAULT_MAX_PER_CLASS = 200_000
_BATCH = 256


class TrainingError(Exception):
    """Training cannot proceed (no mail of one class, say)."""


@dataclass
class TrainingSet:
    """Hashed feature rows of ham (0) and spam (1), sampled to a bounded size."""

    n_features: int
    max_per_class: int = DEFAULT_MAX_PER_CLASS
    seed: int = 0
    seen: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})
    rows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=lambda: {0: [], 1: []})
    duplicates: int = 0
    sources: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, label: int, matrix: scipy.sparse.csr_matrix) -> None:
        for i in range(matrix.shape[0]):
            start, end = matrix.indptr[i], matrix.indptr[i + 1]
            row = (matrix.indices[start:end].copy(), matrix.data[start:end].astype(np.float32))
            self.seen[label] += 1
            kept = self.rows[label]
            if len(kept) < self.max_per_class:
                kept.append(row)
            else:  # reservoir sampling (Algorithm R)
                j = self._random.randrange(self.seen[label])
                if j < self.max_per_class:
                    kept[j] = row

    def matrix(self) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
        rows = self.rows[0] + self.rows[1]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r[0]) for r in rows])
        indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        data = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.float32)
        x = scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(rows), self.n_features))
        y = np.array([0] * len(self.rows[0]) + [1] * len(self.rows[1]))
        return x, y

    def summary(self) -> dict[str, Any]:
        return {
            "ham": self.seen[0],
            "spam": self.seen[1],
            "ham_used": len(self.rows[0]),
            "spam_used": len(self.rows[1]),
            "duplicates_dropped": self.duplicates,
        }


def collect(
    messages: Iterable[LabelledMessage],
    settings: FeatureSettings,
    *,
    max_per_class: int = DEFAULT_MAX_PER_CLASS,
    seed: int = 0,
    progress: Callable[[Iterable[LabelledMessage]], Iterable[LabelledMessage]] = lambda it: it,
) -> TrainingSet:
    """Stream ``messages`` into a :class:`TrainingSet`, dropping duplicates."""
    vectorizer = Vectorizer(settings)
    data = TrainingSet(vectorizer.n_features, max_per_class, seed)
    dedup = Deduplicator()
    pending: dict[int, list[Any]] = {0: [], 1: []}
    for message in progress(messages):
        if not dedup.is_new(message.raw):
            continue
        label = 1 if message.label == "spam" else 0
        pending[label].append(vectorizer.features(message.raw, time_budget=1.0))
        if len(pending[label]) >= _BATCH:
            data.add(label, vectorizer.transform(pending[label]))
            pending[label] = []
    for label, feats in pending.items():
        if feats:
            data.add(label, vectorizer.transform(feats))
    data.duplicates = dedup.dropped
    return data


def _estimator(c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=seed)


def _platt(margins: np.ndarray, y: np.ndarray) -> Calibration:
    """Fit ``p = sigmoid(a·margin + b)`` to out-of-fold margins (Platt's target smoothing)."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    targets = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * margins + params[1]
        p = 1 / (1 + np.exp(-np.clip(z, -40, 40)))
        eps = 1e-12
        value = -np.sum(targets * np.log(p + eps) + (1 - targets) * np.log(1 - p + eps))
        g = p - targets
        return float(value), np.array([np.dot(g, margins), g.sum()])

    result = scipy.optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return Calibration(float(result.x[0]), float(result.x[1]))


#: Told of each fitting phase as it starts: ``(name, phases done, phases in all)``, and once
#: more with ``done == total`` at the end.
PhaseCallback = Callable[[str, int, int], None]


def _no_phases(name: str, done: int, total: int) -> None:
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _figures(y: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """:func:`summarize`'s figures, JSON-clean (a figure that needs both classes is ``None``)."""
    from milterfilters.classifier.evaluation import summarize

    figures = summarize(y, probabilities).as_dict()
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in figures.items()}


def _probabilities(calibration: Calibration, margins: np.ndarray) -> np.ndarray:
    z = np.clip(calibration.slope * margins + calibration.offset, -40, 40)
    return 1 / (1 + np.exp(-z))


def _history_entry(kind: str, data: TrainingSet, metrics: dict[str, Any]) -> dict[str, Any]:
    entry = {"kind": kind, "date": _now(), **data.summary(), "sources": sorted(data.sources)}
    return entry | {"metrics": metrics}


def train(
    data: TrainingSet,
    settings: FeatureSettings,
    *,
    c: float = DEFAULT_C,
    seed: int = 0,
    folds: int = 5,
    phases: PhaseCallback = _no_phases,
) -> Model:
    """Fit the model and calibrate it on out-of-fold margins; ``phases`` is told of each step."""
    x, y = data.matrix()
    counts = np.bincount(y, minlength=2)
    if counts.min() < max(folds, 2):
        raise TrainingError(
            f"need at least {max(folds, 2)} ham and spam messages, got {counts[0]} and {counts[1]}"
        )
    total = folds + 2
    started = time.perf_counter()
    out_of_fold = np.zeros(len(y))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)
    for i, (fit_rows, held_rows) in enumerate(splits):
        phases(f"cross-validation fold {i + 1}/{folds}", i, total)
        fold_model = _estimator(c, seed).fit(x[fit_rows], y[fit_rows])
        out_of_fold[held_rows] = fold_model.decision_function(x[held_rows])
    phases("final fit", folds, total)
    estimator = _estimator(c, seed).fit(x, y)
    phases("calibration", folds + 1, total)
    calibration = _platt(out_of_fold, y)
    phases("done", total, total)
    cross_validation = _figures(y, _probabilities(calibration, out_of_fold))
    metadata = {
        "created": _now(),
        "estimator": {"kind": "logistic_regression", "C": c, "solver": "liblinear", "seed": seed},
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "training": data.summary() | {"sources": sorted(data.sources)},
        "cross_validation": cross_validation,
        "fit_seconds": round(time.perf_counter() - started, 2),
        "history": [_history_entry("train", data, {"cross_validation": cross_validation})],
    }
    weights = estimator.coef_.ravel().astype(np.float32)
    return Model(settings, weights, float(estimator.intercept_[0]), calibration, metadata)


def update(
    model: Model, data: TrainingSet, *, c: float | None = None, phases: PhaseCallback = _no_phases
) -> Model:
    """Fit the new mail in ``data`` starting from ``model``, staying close to its weights.

    Minimises ``0.5 * |w - w_old|^2 + C * sum(logloss)`` over the new messages; the calibration is kept.
    The update's history entry holds the figures of the old and the new weights on the added mail
    (``before`` and ``after``; ``after`` is measured on the mail it was fitted to).
    """
    x, y = data.matrix()
    if len(y) == 0:
        raise TrainingError("no new messages to add")
    c = c if c is not None else float(model.metadata.get("estimator", {}).get("C", DEFAULT_C))
    old = model.weights.astype(np.float64)
    old_b = model.intercept
    signs = np.where(y == 1, 1.0, -1.0)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        z = signs * (x @ w + b)
        loss = np.logaddexp(0, -z)
        g_z = -signs / (1 + np.exp(np.clip(z, -40, 40)))
        grad_w = (w - old) + c * (x.T @ g_z)
        grad_b = (b - old_b) + c * g_z.sum()
        value = 0.5 * np.dot(w - old, w - old) + 0.5 * (b - old_b) ** 2 + c * loss.sum()
        return float(value), np.append(grad_w, grad_b)

    phases("fitting the added mail", 0, 2)
    start = np.append(old, old_b)
    result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 200})
    weights, intercept = result.x[:-1].astype(np.float32), float(result.x[-1])
    phases("measuring", 1, 2)
    metrics = {
        "before": _figures(y, _probabilities(model.calibration, x @ old + old_b)),
        "after": _figures(y, _probabilities(model.calibration, x @ weights.astype(np.float64) + intercept)),
    }
    phases("done", 2, 2)
    metadata = {k: v for k, v in model.metadata.items() if k != "updates"}
    metadata["history"] = [*history(model.metadata), _history_entry("update", data, metrics)]
    metadata["versions"] = {"scikit-learn": sklearn.__version__, "numpy": np.__version__}
    return Model(model.settings, weights, intercept, model.calibration, metadata)
