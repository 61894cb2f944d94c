"""The model and its store: a directory of plain arrays and JSON, never a pickle.

A model directory holds

* ``model.json`` — format, feature settings, intercept, calibration, versions, training
  data summary and metrics;
* ``weights.npz`` — the non-zero weights as two arrays (``index``, ``value``), read with
  ``allow_pickle=False``;
* ``SHA256SUMS`` — checksums of both files (``sha256sum -c`` can check them too).

``model.json``'s ``history`` lists the training and every update after it (date, message
counts, figures); :func:`history` also reads models written before it existed. A model's id
(:attr:`Model.model_id`) is the start of its checksums' hash and the date of its last training
or update.

:func:`save_model` never writes into a live directory: it writes a temporary directory beside
the target and renames it into place, keeping the model it replaces as ``DIR.prev``. The
shipped model (``paths.DEFAULT_MODEL_DIR``) is never overwritten.

Loading checks the checksums, the format and the feature version; anything wrong raises
:class:`ModelError`, a :class:`~milterfilters.core.schema.ConfigError`, so start-up stops with
a clear message instead of scoring mail with a broken model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from milterfilters.classifier.features import MessageFeatures
from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.classifier.vectorize import FeatureSettings, Vectorizer, token_values
from milterfilters.core.schema import ConfigError

MODEL_FORMAT = "milterfilters-linear/1"
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
CHECKSUM_FILE = "SHA256SUMS"


class ModelError(ConfigError):
    """A model directory that is missing, corrupt or made for other features."""


@dataclass(frozen=True)
class Calibration:
    """Platt scaling: ``p = 1 / (1 + exp(-(slope * margin + offset)))``."""

    slope: float = 1.0
    offset: float = 0.0

    def probability(self, margin: float) -> float:
        z = self.slope * margin + self.offset
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


@dataclass(frozen=True)
class TokenWeight:
    """How much one token moved a message's margin (value times weight)."""

    token: str
    contribution: float


@dataclass
class Model:
    """A linear model over hashed tokens, with calibrated probabilities."""

    settings: FeatureSettings
    weights: np.ndarray  # dense float32, one per hashed column
    intercept: float
    calibration: Calibration = field(default_factory=Calibration)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 of the model directory's checksums file; empty for a model not loaded from disk
    digest: str = ""

    def __post_init__(self) -> None:
        self.vectorizer = Vectorizer(self.settings)
        if self.weights.shape != (self.vectorizer.n_features,):
            raise ModelError(
                f"weights have shape {self.weights.shape}, expected ({self.vectorizer.n_features},)"
            )

    @property
    def model_id(self) -> str:
        """``<12 hex digits of the checksums' hash>@<date of the last training or update>``."""
        entries = history(self.metadata)
        trained = str(entries[-1].get("date", "")) if entries else ""
        return f"{self.digest[:12] or 'unsaved'}@{trained or 'unknown'}"

    def margin(self, features: MessageFeatures) -> float:
        """The raw linear score (log-odds before calibration)."""
        columns, values = self.vectorizer.row(features)
        return float(values @ self.weights[columns]) + self.intercept

    def probability(self, features: MessageFeatures) -> float:
        """Calibrated spam probability of one message."""
        return self.calibration.probability(self.margin(features))

    def score_raw(self, raw: bytes, *, time_budget: float | None = None) -> float:
        """Parse, extract and score raw message bytes."""
        kwargs = {} if time_budget is None else {"time_budget": time_budget}
        return self.probability(self.vectorizer.features(raw, **kwargs))

    def explain(self, features: MessageFeatures, top: int = 12) -> list[TokenWeight]:
        """The tokens that pushed the score most, strongest first (either direction)."""
        values = token_values(features, self.settings)
        contributions = [
            TokenWeight(token, value * float(self.weights[self.vectorizer.column(token)]))
            for token, value in values.items()
        ]
        contributions.sort(key=lambda t: abs(t.contribution), reverse=True)
        return contributions[:top]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def history(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The training and each update after it, oldest first (``kind``, ``date``, counts, ``metrics``).

    Models written before ``history`` existed keep ``created``, ``training``,
    ``cross_validation`` and ``updates``; their history is read from those.
    """
    recorded = metadata.get("history")
    if isinstance(recorded, list):
        return [dict(e) for e in recorded if isinstance(e, Mapping)]
    first: dict[str, Any] = {"kind": "train", "date": metadata.get("created", "")}
    training = metadata.get("training")
    first |= dict(training) if isinstance(training, Mapping) else {}
    if isinstance(metadata.get("cross_validation"), Mapping):
        first["metrics"] = {"cross_validation": dict(metadata["cross_validation"])}
    updates = metadata.get("updates")
    updates = updates if isinstance(updates, list) else []
    return [first, *({"kind": "update", **u} for u in updates if isinstance(u, Mapping))]


def previous_dir(directory: str | os.PathLike[str]) -> Path:
    """Where :func:`save_model` keeps the model it replaced: ``DIR.prev`` beside ``DIR``."""
    path = Path(directory)
    return path.with_name(path.name + ".prev")


def _is_model_dir(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() or (path / CHECKSUM_FILE).is_file()


def check_target(directory: str | os.PathLike[str]) -> None:
    """Raise :class:`ModelError` if :func:`save_model` would refuse ``directory``: the shipped
    model, a directory holding something other than a model, or a ``DIR.prev`` that is not one."""
    out = Path(directory)
    if out.resolve() == DEFAULT_MODEL_DIR.resolve():
        raise ModelError(
            "this is the shipped model, which training never changes: write the new model to another "
            "directory and set [classifier] model to it",
            source=str(out),
        )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ModelError("exists and is not a directory", source=str(out))
    if out.is_dir() and any(out.iterdir()) and not _is_model_dir(out):
        raise ModelError("exists and is not a model directory: choose a new or empty one", source=str(out))
    prev = previous_dir(out)
    if prev.exists() and not (prev.is_dir() and not prev.is_symlink() and _is_model_dir(prev)):
        raise ModelError(f"{prev.name} beside it exists and is not a model directory", source=str(out))


def _write_files(model: Model, target: Path) -> None:
    nonzero = np.flatnonzero(model.weights)
    meta = {
        "format": MODEL_FORMAT,
        "features": model.settings.as_dict(),
        "intercept": model.intercept,
        "calibration": {"slope": model.calibration.slope, "offset": model.calibration.offset},
        **{k: v for k, v in model.metadata.items() if k not in ("format", "features")},
    }
    np.savez_compressed(
        target / WEIGHTS_FILE,
        index=nonzero.astype(np.int32),
        value=model.weights[nonzero].astype(np.float32),
    )
    (target / MODEL_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    sums = "".join(f"{_sha256(target / name)}  {name}\n" for name in (MODEL_FILE, WEIGHTS_FILE))
    (target / CHECKSUM_FILE).write_text(sums)
    for name in (MODEL_FILE, WEIGHTS_FILE, CHECKSUM_FILE):
        with (target / name).open("rb") as f:
            os.fsync(f.fileno())


def _swap_in(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; a model already at ``out`` becomes ``out.prev`` (an older one goes)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(new, out)
        return
    prev = previous_dir(out)
    if prev.exists():
        shutil.rmtree(prev)
    os.rename(out, prev)
    try:
        os.rename(new, out)
    except OSError:
        os.rename(prev, out)
        raise


def save_model(model: Model, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` as the directory ``directory``, atomically; returns it.

    The files are written into a temporary directory beside it, then renamed into place: a
    reader never sees half a model. A model already there is kept as ``DIR.prev`` (replacing an
    older ``DIR.prev``). Refused (:class:`ModelError`): the shipped model, a directory that holds
    something other than a model, a ``DIR.prev`` that is not a model.
    """
    out = Path(directory)
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_files(model, tmp)
        tmp.chmod(0o755)
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _check_sums(directory: Path) -> None:
    try:
        lines = (directory / CHECKSUM_FILE).read_text().splitlines()
    except OSError as e:
        raise ModelError(f"cannot read {CHECKSUM_FILE}: {e.strerror}", source=str(directory)) from e
    expected = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        expected[name.strip()] = digest.strip()
    for name in (MODEL_FILE, WEIGHTS_FILE):
        if name not in expected:
            raise ModelError(f"{CHECKSUM_FILE} does not list {name}", source=str(directory))
        try:
            actual = _sha256(directory / name)
        except OSError as e:
            raise ModelError(f"cannot read {name}: {e.strerror}", source=str(directory)) from e
        if actual != expected[name]:
            raise ModelError(f"checksum mismatch for {name}: the model is corrupt", source=str(directory))


def _settings_from(meta: Mapping[str, Any], source: str) -> FeatureSettings:
    raw = meta.get("features")
    if not isinstance(raw, Mapping):
        raise ModelError("model.json has no feature settings", source=source)
    try:
        settings = FeatureSettings(**raw)
    except TypeError as e:
        raise ModelError(f"unknown feature settings: {e}", source=source) from e
    if settings.feature_version != FeatureSettings().feature_version:
        raise ModelError(
            f"model made for feature version {settings.feature_version}, this milterfilters "
            f"extracts version {FeatureSettings().feature_version}: retrain it with 'milterfilters train'",
            source=source,
        )
    if not 10 <= settings.n_features_log2 <= 24:
        raise ModelError(f"n_features_log2 {settings.n_features_log2} out of range", source=source)
    return settings


def _check_finite(value: np.ndarray, intercept: float, calibration: Calibration, source: str) -> None:
    """Refuse a model holding NaN or infinity: it would score every message as NaN or fail on it."""
    if not np.all(np.isfinite(value)):
        raise ModelError("weights.npz: the weights hold a number that is not finite", source=source)
    numbers = {
        "intercept": intercept,
        "calibration.slope": calibration.slope,
        "calibration.offset": calibration.offset,
    }
    for key, number in numbers.items():
        if not math.isfinite(number):
            raise ModelError(f"model.json: {key} is {number!r}, not a finite number", source=source)


def load_model(directory: str | os.PathLike[str]) -> Model:
    """Load and verify a model directory; raises :class:`ModelError` on any problem."""
    path = Path(directory)
    source = str(path)
    if not path.is_dir():
        raise ModelError("model directory does not exist", source=source)
    _check_sums(path)
    try:
        meta = json.loads((path / MODEL_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {MODEL_FILE}: {e}", source=source) from e
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelError(f"unsupported model format {found!r}, expected {MODEL_FORMAT!r}", source=source)
    settings = _settings_from(meta, source)
    n_features = 1 << settings.n_features_log2
    try:
        with np.load(path / WEIGHTS_FILE, allow_pickle=False) as arrays:
            index = np.asarray(arrays["index"], dtype=np.int64)
            value = np.asarray(arrays["value"], dtype=np.float32)
        intercept = float(meta["intercept"])
        calibration = Calibration(float(meta["calibration"]["slope"]), float(meta["calibration"]["offset"]))
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as e:
        raise ModelError(f"cannot read the weights: {e}", source=source) from e
    if index.shape != value.shape or (index.size and (index.min() < 0 or index.max() >= n_features)):
        raise ModelError("weights do not fit the feature settings", source=source)
    _check_finite(value, intercept, calibration, source)
    weights = np.zeros(n_features, dtype=np.float32)
    weights[index] = value
    digest = hashlib.sha256((path / CHECKSUM_FILE).read_bytes()).hexdigest()
    return Model(settings, weights, intercept, calibration, metadata=meta, digest=digest)


__all__ = [
    "DEFAULT_MODEL_DIR",
    "Calibration",
    "Model",
    "ModelError",
    "TokenWeight",
    "check_target",
    "history",
    "load_model",
    "load_model_cached",
    "previous_dir",
    "save_model",
]

_cache: dict[str, tuple[str, Model]] = {}
_cache_lock = threading.Lock()


def load_model_cached(directory: str | os.PathLike[str]) -> Model:
    """:func:`load_model`, shared by the chains built from one unchanged directory.

    Chains are rebuilt on every reload (SIGHUP) and in tests; a model whose files still match
    an unchanged checksums file is not parsed again (the files are always verified, so a
    damaged copy is refused even when its checksums file is intact). One model is kept per
    directory.
    """
    path = Path(directory).resolve()
    try:
        sums = (path / CHECKSUM_FILE).read_text()
    except OSError:
        return load_model(path)  # raises the precise error
    _check_sums(path)
    with _cache_lock:
        cached = _cache.get(str(path))
    if cached is not None and cached[0] == sums:
        return cached[1]
    model = load_model(path)
    with _cache_lock:
        _cache[str(path)] = (sums, model)
    return model
