"""train → evaluate round trips through the CLI on small generated corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from milterfilters.classifier.model import load_model
from milterfilters.cli import main
from tests.support.mailgen import make_messages, write_folder, write_maildir, write_mbox

#: a small hashed space keeps these tests fast; the shipped model uses 2**20
BITS = ["--hash-bits", "14"]
WRITERS = {"maildir": write_maildir, "mbox": write_mbox, "folder": write_folder}


def _corpus(tmp_path: Path, form: str, seed: int, n: int = 40) -> tuple[Path, Path]:
    write = WRITERS[form]
    ham = write(tmp_path / f"ham-{form}-{seed}", make_messages("ham", n, seed))
    spam = write(tmp_path / f"spam-{form}-{seed}", make_messages("spam", n, seed))
    return ham, spam


@pytest.mark.parametrize("form", sorted(WRITERS))
def test_train_then_evaluate_round_trip(
    tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ham, spam = _corpus(tmp_path, form, seed=1)
    out = tmp_path / "model"
    assert (
        main(["train", *BITS, "--ham", str(ham), "--spam", str(spam), "--out", str(out), "--seed", "3"]) == 0
    )
    assert "40 ham, 40 spam" in capsys.readouterr().out
    test_ham, test_spam = _corpus(tmp_path, form, seed=2, n=20)
    scores = tmp_path / "scores.tsv"
    args = ["evaluate", "--ham", str(test_ham), "--spam", str(test_spam), "--model", str(out)]
    assert main([*args, "--json", "--scores-out", str(scores)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["ham"], result["spam"]) == (20, 20)
    assert result["auc"] > 0.99 and result["false_positives"] == 0 and result["false_negatives"] == 0
    assert (result["threshold"], result["high_threshold"]) == (0.5, 0.99)
    assert result["high_false_positives"] == 0
    rows = [line.split("\t") for line in scores.read_text().splitlines()]
    assert len(rows) == 40
    assert all(float(p) < 0.5 for _, label, p in rows if label == "ham")
    assert all(float(p) >= 0.5 for _, label, p in rows if label == "spam")


def test_duplicates_dropped_and_training_is_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ham, spam = _corpus(tmp_path, "folder", seed=4, n=30)
    dup = write_folder(tmp_path / "dups", make_messages("ham", 5, 4))  # the same first five ham
    for name in ("a", "b"):
        main(
            ["train", *BITS, "--ham", str(ham), str(dup), "--spam", str(spam), "--out", str(tmp_path / name)]
        )
    assert "(5 duplicates dropped)" in capsys.readouterr().out
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert (a.weights == b.weights).all() and a.intercept == b.intercept


def test_update_moves_the_model_towards_new_mail(tmp_path: Path) -> None:
    ham, spam = _corpus(tmp_path, "folder", seed=5, n=30)
    out = tmp_path / "model"
    main(["train", *BITS, "--ham", str(ham), "--spam", str(spam), "--out", str(out)])
    # a kind of ham the model has never seen, which shouts like spam
    odd = [
        raw.replace(b"Hi all,", b"FREE OFFER CASH PRIZE WINNER CLICK NOW FREE MONEY")
        for raw in make_messages("ham", 10, 6)
    ]
    folder = write_folder(tmp_path / "odd", odd)
    before = load_model(out)
    probe = odd[0]
    main(["train", "--update", "--ham", str(folder), "--out", str(out)])
    after = load_model(out)
    assert after.score_raw(probe) < before.score_raw(probe)
    assert after.metadata["history"][-1]["ham"] == 10
    assert after.score_raw(make_messages("spam", 1, 7)[0]) > 0.5  # still knows spam


def test_split_file_selects_rows_of_an_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tarfile

    root = tmp_path / "corpus"
    rows = ["path\tlabel\tsplit"]
    for kind in ("ham", "spam"):
        folder = write_folder(root / kind, make_messages(kind, 30, 8))
        for i, path in enumerate(sorted(folder.iterdir())):
            rows.append(f"{kind}/{path.name}\t{kind}\t{'train' if i < 20 else 'test'}")
    split = tmp_path / "split.tsv"
    split.write_text("\n".join(rows) + "\n")
    archive = tmp_path / "corpus.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(root, arcname="corpus")
    out = tmp_path / "model"
    corpus_args = ["--corpus", str(archive), "--split-file", str(split)]
    assert main(["train", *BITS, *corpus_args, "--split", "train", "--out", str(out)]) == 0
    assert "20 ham, 20 spam" in capsys.readouterr().out
    config = tmp_path / "c.toml"
    config.write_text("[classifier]\nspam_threshold = 0.9\nhigh_threshold = 0.95\n")
    evaluate = ["evaluate", *corpus_args, "--split", "test", "--model", str(out), "--json"]
    assert main([*evaluate, "--config", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ham"] == 10 and (result["threshold"], result["high_threshold"]) == (0.9, 0.95)
    # the same rows from the unpacked folder
    assert (
        main(
            [
                "evaluate",
                "--corpus",
                str(root),
                "--split-file",
                str(split),
                "--split",
                "test",
                "--model",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["spam"] == 10


def test_bad_arguments_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--ham", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "--ham", str(tmp_path), "--model", str(tmp_path / "none")]) == 2
    assert "model directory does not exist" in capsys.readouterr().err
