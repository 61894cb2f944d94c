"""Issue 10: corpus readers never block on or read what is not a regular file (a FIFO in a
training folder used to hang ``train`` and ``evaluate`` for ever) and count what they skip;
a model holding a non-finite number is refused at load, not scored per message."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from milterfilters import build_chain
from milterfilters.classifier import model as store
from milterfilters.classifier.sources import Skipped, SourceError, iter_corpus, iter_messages, read_split_file
from milterfilters.classifier.vectorize import FeatureSettings
from milterfilters.config import config_from_dict
from milterfilters.core.schema import ConfigError
from tests.support.mailgen import make_messages, write_folder

T = TypeVar("T")


def _within(seconds: float, work: Callable[[], T]) -> T:
    """``work()``, failing the test (instead of hanging it) if it takes longer than ``seconds``."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as e:  # handed to the test thread
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s: the reader blocked"
    if errors:
        raise errors[0]
    return result[0]


def _folder_with_specials(tmp_path: Path, name: str = "ham") -> Path:
    """A folder of 5 messages plus a FIFO, a dangling link and links to two devices."""
    folder = write_folder(tmp_path / name, make_messages("ham", 5, 1))
    os.mkfifo(folder / "zz-fifo.eml")
    (folder / "zz-dangling.eml").symlink_to(tmp_path / "nowhere")
    (folder / "zz-null.eml").symlink_to("/dev/null")
    (folder / "zz-zero.eml").symlink_to("/dev/zero")
    return folder


def test_fifo_in_training_folder_does_not_hang_the_reader(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ham", make_messages("ham", 3, 1))
    os.mkfifo(folder / "0001-fifo.eml")
    skipped = Skipped()
    names = _within(10, lambda: [name for name, _ in iter_messages(folder, skipped)])
    assert len(names) == 3 and skipped.entries == [(str(folder / "0001-fifo.eml"), "FIFO")]


def test_devices_and_dangling_links_are_skipped_and_counted(tmp_path: Path) -> None:
    folder = _folder_with_specials(tmp_path)
    skipped = Skipped()
    messages = _within(10, lambda: list(iter_messages(folder, skipped)))
    assert len(messages) == 5 and all(raw for _, raw in messages)
    reasons = {Path(name).name: reason for name, reason in skipped.entries}
    assert reasons == {
        "zz-fifo.eml": "FIFO",
        "zz-dangling.eml": "dangling link",
        "zz-null.eml": "character device",
        "zz-zero.eml": "character device",
    }
    assert skipped.summary().startswith("4 skipped")


def test_link_to_a_regular_file_is_still_read(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "ham", make_messages("ham", 1, 1))
    (folder / "link.eml").symlink_to(folder / "00000.eml")
    assert len(list(iter_messages(folder))) == 2


def test_fifo_given_as_a_corpus_path_is_skipped(tmp_path: Path) -> None:
    fifo = tmp_path / "ham.mbox"
    os.mkfifo(fifo)
    skipped = Skipped()
    assert _within(10, lambda: list(iter_corpus(ham=(str(fifo),), skipped=skipped))) == []
    assert skipped.count == 1


def test_fifo_as_split_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "split.tsv"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="FIFO"):
        _within(10, lambda: read_split_file(fifo, "train"))


def test_missing_path_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(iter_messages(tmp_path / "missing"))


def test_fifo_and_link_members_of_a_tar_are_skipped_and_counted(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        raw = make_messages("ham", 1, 1)[0]
        member = tarfile.TarInfo("corpus/ham/1.eml")
        member.size = len(raw)
        tar.addfile(member, io.BytesIO(raw))
        for name, kind in (("corpus/ham/fifo", tarfile.FIFOTYPE), ("corpus/ham/link", tarfile.SYMTYPE)):
            special = tarfile.TarInfo(name)
            special.type = kind
            special.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(special)
    skipped = Skipped()
    assert [name for name, _ in iter_messages(archive, skipped)] == ["ham/1.eml"]
    assert sorted(reason for _, reason in skipped.entries) == ["FIFO", "link"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "milterfilters.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_train_and_evaluate_with_a_fifo_finish_and_report_what_they_skipped(tmp_path: Path) -> None:
    ham = _folder_with_specials(tmp_path, "ham")
    spam = write_folder(tmp_path / "spam", make_messages("spam", 5, 1))
    out = tmp_path / "model"
    trained = _cli("train", "--hash-bits", "12", "--ham", str(ham), "--spam", str(spam), "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert "5 ham, 5 spam" in trained.stdout
    assert "(4 skipped: empty, not mail, or not a readable regular file)" in trained.stdout
    assert "warning: 4 skipped" in trained.stderr
    evaluated = _cli("evaluate", "--model", str(out), "--ham", str(ham), "--spam", str(spam), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["skipped"] == 4


# -- models ------------------------------------------------------------------------------

SETTINGS = FeatureSettings(n_features_log2=12)


def _model_dir(tmp_path: Path) -> Path:
    weights = np.zeros(1 << 12, dtype=np.float32)
    weights[:10] = 0.5
    return store.save_model(
        store.Model(SETTINGS, weights, 0.1, store.Calibration(1.0, 0.0)), tmp_path / "model"
    )


def _resign(directory: Path, meta_text: str) -> None:
    """Write ``model.json`` and matching checksums, as a careless (or hostile) tool would."""
    (directory / store.MODEL_FILE).write_text(meta_text)
    sums = "".join(
        f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n"
        for n in (store.MODEL_FILE, store.WEIGHTS_FILE)
    )
    (directory / store.CHECKSUM_FILE).write_text(sums)


@pytest.mark.parametrize(
    "field,value",
    [
        ("calibration", '{"slope": NaN, "offset": 0.0}'),
        ("calibration", '{"slope": 1.0, "offset": Infinity}'),
        ("calibration", '{"slope": 1e999, "offset": 0.0}'),
        ("intercept", "NaN"),
        ("intercept", "-Infinity"),
        ("intercept", "1" + "0" * 400),
    ],
)
def test_model_with_non_finite_calibration_or_intercept_is_refused_at_load(
    tmp_path: Path, field: str, value: str
) -> None:
    directory = _model_dir(tmp_path)
    meta = json.loads((directory / store.MODEL_FILE).read_text())
    meta[field] = "@@"
    _resign(directory, json.dumps(meta).replace('"@@"', value))
    with pytest.raises(store.ModelError) as caught:
        store.load_model(directory)
    assert str(directory) in str(caught.value) and "\n" not in str(caught.value)
    assert "finite" in str(caught.value) or "cannot read" in str(caught.value)


def test_model_with_nan_weights_is_refused_at_load(tmp_path: Path) -> None:
    weights = np.zeros(1 << 12, dtype=np.float32)
    weights[7] = np.nan
    directory = store.save_model(store.Model(SETTINGS, weights, 0.0), tmp_path / "model")
    with pytest.raises(store.ModelError, match="weights hold a number that is not finite"):
        store.load_model(directory)


def test_model_with_nan_calibration_stops_the_chain_naming_the_key(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path)
    meta = json.loads((directory / store.MODEL_FILE).read_text())
    meta["calibration"]["slope"] = float("nan")
    _resign(directory, json.dumps(meta))
    config = config_from_dict({"classifier": {"model": str(directory)}})
    with pytest.raises(ConfigError) as caught:
        build_chain(config)
    assert caught.value.key == "classifier.model" and "calibration.slope" in str(caught.value)
