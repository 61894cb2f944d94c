"""The model store: safe format, checksums, clear errors for missing or broken models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from milterfilters import build_chain
from milterfilters.classifier.model import (
    CHECKSUM_FILE,
    MODEL_FILE,
    WEIGHTS_FILE,
    Calibration,
    Model,
    ModelError,
    load_model,
    save_model,
)
from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.classifier.vectorize import FeatureSettings
from milterfilters.config import config_from_dict
from milterfilters.core.schema import ConfigError

SETTINGS = FeatureSettings(n_features_log2=12)


def tiny_model() -> Model:
    rng = np.random.default_rng(0)
    weights = np.where(rng.random(1 << 12) < 0.1, rng.normal(size=1 << 12), 0).astype(np.float32)
    return Model(SETTINGS, weights, 0.25, Calibration(1.5, -0.5), {"note": "test"})


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.weights, model.weights)
    assert loaded.intercept == model.intercept and loaded.calibration == model.calibration
    assert loaded.metadata["note"] == "test"
    raw = b"Subject: hi\n\nhello there\n"
    assert loaded.score_raw(raw) == pytest.approx(model.score_raw(raw))


def test_weights_file_holds_no_pickle(tmp_path: Path) -> None:
    save_model(tiny_model(), tmp_path)
    with np.load(tmp_path / WEIGHTS_FILE, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["index", "value"]


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_model(tiny_model(), tmp_path)
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"checksum mismatch for weights\.npz"):
        load_model(tmp_path)


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    save_model(tiny_model(), tmp_path)
    meta = json.loads((tmp_path / MODEL_FILE).read_text())
    meta["intercept"] = 50.0
    (tmp_path / MODEL_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"checksum mismatch for model\.json"):
        load_model(tmp_path)


def test_missing_directory_and_missing_checksums(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")
    save_model(tiny_model(), tmp_path)
    (tmp_path / CHECKSUM_FILE).unlink()
    with pytest.raises(ModelError, match="SHA256SUMS"):
        load_model(tmp_path)


def _rewrite_meta(directory: Path, **changes: object) -> None:
    import hashlib

    meta = json.loads((directory / MODEL_FILE).read_text())
    meta.update(changes)
    (directory / MODEL_FILE).write_text(json.dumps(meta))
    sums = "".join(
        f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n"
        for n in (MODEL_FILE, WEIGHTS_FILE)
    )
    (directory / CHECKSUM_FILE).write_text(sums)


def test_incompatible_model_is_refused(tmp_path: Path) -> None:
    save_model(tiny_model(), tmp_path)
    _rewrite_meta(tmp_path, features=dict(SETTINGS.as_dict(), feature_version=999))
    with pytest.raises(ModelError, match="feature version 999"):
        load_model(tmp_path)
    _rewrite_meta(tmp_path, format="pickle")
    with pytest.raises(ModelError, match="unsupported model format"):
        load_model(tmp_path)


def test_broken_model_stops_start_up_with_a_config_error(tmp_path: Path) -> None:
    config = config_from_dict({"classifier": {"model": str(tmp_path / "missing")}})
    with pytest.raises(ConfigError, match="missing: model directory does not exist"):
        build_chain(config)


def test_a_model_error_names_the_configuration_key(tmp_path: Path) -> None:
    config = config_from_dict({"classifier": {"shadow_model": str(tmp_path / "gone")}})
    with pytest.raises(ConfigError) as raised:
        build_chain(config)
    assert raised.value.key == "classifier.shadow_model"
    assert "gone: model directory does not exist" in str(raised.value)


def test_shipped_default_model_loads() -> None:
    model = load_model(DEFAULT_MODEL_DIR)
    assert model.metadata["training"]["ham"] > 1000 and model.metadata["training"]["spam"] > 1000
    assert "auc" in model.metadata["cross_validation"]


def test_copied_model_loads_checksums_cover_content_not_location(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "copy", ignore=shutil.ignore_patterns("*.md"))
    assert load_model(tmp_path / "copy").intercept == load_model(DEFAULT_MODEL_DIR).intercept


def test_cached_loading_sees_a_retrained_model(tmp_path: Path) -> None:
    from milterfilters.classifier.model import load_model_cached

    save_model(tiny_model(), tmp_path)
    first = load_model_cached(tmp_path)
    assert load_model_cached(tmp_path) is first
    changed = tiny_model()
    changed.intercept = -3.0
    save_model(changed, tmp_path)
    assert load_model_cached(tmp_path).intercept == -3.0
