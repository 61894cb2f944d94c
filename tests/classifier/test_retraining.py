"""Safe retraining: ``train`` never writes into the shipped model, writes a new model directory
atomically and keeps the one it replaces as ``DIR.prev``; ``model.json`` keeps a history of the
training and every update; the live model's id is logged; progress has a total; ``--plot``
without matplotlib fails before scoring; only real messages are counted."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from milterfilters import build_chain
from milterfilters.classifier import commands
from milterfilters.classifier import model as store
from milterfilters.classifier.model import ModelError, history, load_model, previous_dir, save_model
from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.classifier.sources import Skipped, count_corpus, iter_messages, looks_like_mail
from milterfilters.classifier.training import TrainingSet, train
from milterfilters.classifier.vectorize import FeatureSettings
from milterfilters.cli import main
from milterfilters.config import config_from_dict
from tests.support.mailgen import make_messages, write_folder, write_maildir, write_mbox

BITS = ["--hash-bits", "12"]
SHOUTING_HAM = [
    raw.replace(b"Hi all,", b"FREE OFFER CASH PRIZE WINNER CLICK NOW FREE MONEY")
    for raw in make_messages("ham", 10, 6)
]


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mail")
    return {
        "ham": write_folder(root / "ham", make_messages("ham", 30, 2)),
        "spam": write_folder(root / "spam", make_messages("spam", 30, 2)),
        "odd": write_folder(root / "odd", SHOUTING_HAM),
        "relabelled": write_folder(root / "relabelled", make_messages("spam", 10, 7)),
    }


def _train(corpus: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["train", *BITS, "--ham", str(corpus["ham"]), "--spam", str(corpus["spam"]),
                 "--out", str(out), *extra])


def _update(corpus: dict[str, Path], out: Path, ham: str = "odd") -> int:
    return main(["train", "--update", "--ham", str(corpus[ham]), "--out", str(out)])


# -- the shipped model is never written -----------------------------------------------------


def test_train_requires_out(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", *BITS, "--ham", str(corpus["ham"]), "--spam", str(corpus["spam"])])
    assert exit_.value.code == 2 and "--out" in capsys.readouterr().err


@pytest.mark.parametrize("update", [False, True])
def test_train_refuses_the_shipped_model_before_reading_mail(
    tmp_path: Path, update: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digests(DEFAULT_MODEL_DIR)
    argv = ["train", "--ham", str(tmp_path / "missing"), "--out", str(DEFAULT_MODEL_DIR)]
    assert main(argv + (["--update"] if update else [])) == 2
    assert "shipped model" in capsys.readouterr().err  # not "no such file": refused first
    assert _digests(DEFAULT_MODEL_DIR) == before
    assert not previous_dir(DEFAULT_MODEL_DIR).exists()


def test_save_model_refuses_a_directory_holding_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    model = load_model(DEFAULT_MODEL_DIR)
    with pytest.raises(ModelError, match="not a model directory"):
        save_model(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# -- atomic write, DIR.prev --------------------------------------------------------------------


def test_update_keeps_the_previous_model_beside_it(corpus: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert _train(corpus, out) == 0
    first = _digests(out)
    assert not previous_dir(out).exists()
    assert _update(corpus, out) == 0
    assert _digests(previous_dir(out)) == first and _digests(out) != first
    second = _digests(out)
    assert _update(corpus, out) == 0
    assert _digests(previous_dir(out)) == second  # one step back, the oldest goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.prev"]  # no temp dir left


def test_a_failed_write_leaves_the_old_model_whole(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model"
    assert _train(corpus, out) == 0
    before = _digests(out)

    def half_written(model: Any, target: Path) -> None:
        (target / store.MODEL_FILE).write_text("{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_write_files", half_written)
    with pytest.raises(OSError, match="No space"):
        save_model(load_model(out), out)
    assert _digests(out) == before and load_model(out) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# -- history and model id ------------------------------------------------------------------


def test_history_records_the_training_and_each_update(corpus: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert _train(corpus, out) == 0
    (trained,) = load_model(out).metadata["history"]
    assert trained["kind"] == "train" and (trained["ham"], trained["spam"]) == (30, 30)
    assert 0.9 < trained["metrics"]["cross_validation"]["auc"] <= 1.0
    assert _update(corpus, out, ham="relabelled") == 0  # spam-like mail the user calls ham
    entries = load_model(out).metadata["history"]
    assert [e["kind"] for e in entries] == ["train", "update"] and entries[0] == trained
    added = entries[1]
    assert (added["ham"], added["spam"], added["sources"]) == (10, 0, ["relabelled"])
    before, after = added["metrics"]["before"], added["metrics"]["after"]
    assert before["auc"] is None and before["ham"] == 10  # one class only: no AUC, the error counts
    assert after["false_positives"] < before["false_positives"] == 10


def test_history_of_a_model_written_before_it_existed() -> None:
    meta = load_model(DEFAULT_MODEL_DIR).metadata
    assert "history" not in meta  # the shipped model predates it
    (entry,) = history(meta)
    assert entry["kind"] == "train" and entry["date"] == meta["created"]
    assert entry["ham"] == meta["training"]["ham"]
    assert entry["metrics"]["cross_validation"] == meta["cross_validation"]


def test_updating_a_copy_of_the_shipped_model_starts_its_history(tmp_path: Path) -> None:
    out = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, out)
    folder = write_folder(tmp_path / "odd", SHOUTING_HAM)
    assert main(["train", "--update", "--ham", str(folder), "--out", str(out)]) == 0
    meta = load_model(out).metadata
    assert [e["kind"] for e in meta["history"]] == ["train", "update"] and "updates" not in meta
    assert (previous_dir(out) / "MODEL_CARD.md").exists()  # whatever was there is kept


def test_model_id_is_checksums_hash_and_last_training_date(corpus: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert _train(corpus, out) == 0
    model = load_model(out)
    digest = hashlib.sha256((out / store.CHECKSUM_FILE).read_bytes()).hexdigest()
    assert model.model_id == f"{digest[:12]}@{model.metadata['history'][-1]['date']}"
    assert _update(corpus, out) == 0
    assert load_model(out).model_id != model.model_id


def test_live_model_id_is_logged_when_the_chain_is_built(
    corpus: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "model"
    assert _train(corpus, out) == 0
    for _ in range(2):  # start-up, then a reload builds the chain again
        with caplog.at_level(logging.INFO, logger="milterfilters.classifier"):
            build_chain(config_from_dict({"classifier": {"model": str(out)}})).close()
    ids = [r.getMessage() for r in caplog.records if load_model(out).model_id in r.getMessage()]
    assert len(ids) == 2 and str(out) in ids[0]


# -- progress --------------------------------------------------------------------------------


class RecordingBar:
    """Stands in for tqdm: records totals and counts."""

    bars: ClassVar[list[RecordingBar]] = []

    def __init__(self, *, total: int | None = None, desc: str = "", **_: Any) -> None:
        self.total, self.desc, self.n, self.postfixes = total, desc, 0, []
        RecordingBar.bars.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfixes.append(text)

    def close(self) -> None:
        pass

    def __enter__(self) -> RecordingBar:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def test_progress_covers_reading_with_a_total_and_every_fitting_phase(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm

    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    RecordingBar.bars = []
    ham = tmp_path / "ham"
    shutil.copytree(corpus["ham"], ham)
    (ham / "empty.eml").write_bytes(b"")  # read and skipped: still a step of the bar
    assert _train(corpus | {"ham": ham}, tmp_path / "model") == 0
    reading, fitting = RecordingBar.bars
    assert (reading.desc, reading.total, reading.n) == ("reading", 61, 61)
    assert fitting.desc == "fitting" and fitting.n == fitting.total == 7
    assert fitting.postfixes[:5] == [f"cross-validation fold {i}/5" for i in range(1, 6)]
    assert fitting.postfixes[5:] == ["final fit", "calibration", "done"]


def test_fitting_phases_are_told_in_order() -> None:
    data = TrainingSet(1 << 10)
    rng = np.random.default_rng(1)
    import scipy.sparse

    for label in (0, 1):
        data.add(label, scipy.sparse.csr_matrix(rng.random((6, 1 << 10)) + label))
    calls: list[tuple[str, int, int]] = []
    train(data, FeatureSettings(n_features_log2=10), folds=3, phases=lambda *c: calls.append(c))
    assert [done for _, done, _ in calls] == [0, 1, 2, 3, 4, 5] and {t for *_, t in calls} == {5}


@pytest.mark.parametrize(
    ("write", "expected"), [(write_folder, 7), (write_maildir, 7), (write_mbox, 7)]
)
def test_count_corpus_is_the_number_of_messages_read(tmp_path: Path, write: Any, expected: int) -> None:
    path = write(tmp_path / "box", make_messages("ham", expected, 3))
    assert count_corpus(ham=(str(path),)) == expected == len(list(iter_messages(path)))


# -- evaluate --plot without matplotlib -----------------------------------------------------------


def test_plot_without_matplotlib_says_how_to_get_it_before_scoring(
    corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec sees it as missing

    def scored(*_: object) -> None:
        raise AssertionError("scored before checking for matplotlib")

    monkeypatch.setattr(commands, "_score", scored)
    argv = ["evaluate", "--ham", str(corpus["ham"]), "--spam", str(corpus["spam"]), "--plot", "x.png"]
    assert main(argv) == 2
    assert "pip install 'milterfilters[plot]'" in capsys.readouterr().err


# -- readers count only real messages ------------------------------------------------------------


def test_empty_mbox_and_non_mail_file_are_not_messages(tmp_path: Path) -> None:
    (tmp_path / "empty.mbox").write_bytes(b"")
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (tmp_path / "notes.txt").write_bytes(b"remember the milk\n")
    (tmp_path / "blank.eml").write_bytes(b"\n\n  \n")
    (tmp_path / "real.eml").write_bytes(make_messages("ham", 1, 4)[0])
    skipped = Skipped()
    assert [Path(n).name for n, _ in iter_messages(tmp_path, skipped)] == ["real.eml"]
    reasons = {Path(name).name: reason for name, reason in skipped.entries}
    assert reasons == {"empty.mbox": "empty", "blank.eml": "empty", "picture.png": "not mail",
                       "notes.txt": "not mail"}
    skipped = Skipped()
    assert list(iter_messages(tmp_path / "empty.mbox", skipped)) == [] and skipped.count == 1


def test_generated_and_mbox_messages_look_like_mail() -> None:
    messages = make_messages("ham", 5, 1) + make_messages("spam", 5, 1)
    assert all(looks_like_mail(m) for m in messages)
    assert all(looks_like_mail(b"From alice@example.org Mon Jan 1 00:00:00 2024\n" + m) for m in messages)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), st.sampled_from(make_messages("ham", 3, 5))))
def test_a_file_counts_as_a_message_only_if_it_looks_like_mail(tmp_path: Path, data: bytes) -> None:
    assume(not data.startswith(b"From "))  # an mbox: its entries are judged one by one
    path = tmp_path / "entry"
    path.write_bytes(data)
    skipped = Skipped()
    read = list(iter_messages(path, skipped))
    assert len(read) == int(looks_like_mail(data)) and len(read) + skipped.count == 1
    assert count_corpus(ham=(str(path),)) >= len(read)
