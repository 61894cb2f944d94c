"""``milterfilters train`` and ``milterfilters evaluate``.

The default model is regenerated with::

    milterfilters train --corpus ../shared/corpora/spamassassin.tar.xz \\
        --split-file ../shared/corpora/spamassassin-split.tsv --split train --out models
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from milterfilters.classifier.paths import DEFAULT_MODEL_DIR
from milterfilters.classifier.sources import (
    LabelledMessage,
    Skipped,
    SourceError,
    iter_corpus,
    read_split_file,
)
from milterfilters.core.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

#: Defaults repeated from :mod:`.training` so that building the parser imports no scikit-learn.
DEFAULT_C = 100.0
DEFAULT_MAX_PER_CLASS = 200_000


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ham", nargs="+", default=[], metavar="PATH", help="ham: Maildir, mbox, folder or archive"
    )
    p.add_argument(
        "--spam", nargs="+", default=[], metavar="PATH", help="spam: Maildir, mbox, folder or archive"
    )
    p.add_argument(
        "--corpus",
        nargs="+",
        default=[],
        metavar="PATH",
        help="folder or tar archive labelled by --split-file (paths relative to its top folder)",
    )
    p.add_argument("--split-file", metavar="TSV", help="TSV with columns path, label, split")
    p.add_argument(
        "--split", default="train", metavar="NAME", help="rows of --split-file to use (train|test)"
    )


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to the ``milterfilters`` command."""
    p = subparsers.add_parser("train", help="train (or --update) a content classifier model")
    _add_corpus_args(p)
    p.add_argument("--out", default=str(DEFAULT_MODEL_DIR), metavar="DIR", help="model directory to write")
    p.add_argument("--seed", type=int, default=0, help="random seed (folds, sampling)")
    p.add_argument("--update", action="store_true", help="add this mail to the model in --out")
    p.add_argument("--c", type=float, default=DEFAULT_C, help="inverse regularisation strength")
    p.add_argument(
        "--hash-bits", type=int, default=20, help="2**N hashed feature columns (10-24; default 20)"
    )
    p.add_argument(
        "--max-per-class", type=int, default=DEFAULT_MAX_PER_CLASS, help="messages kept per class (sampled)"
    )
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="score labelled mail with a model and report accuracy")
    _add_corpus_args(p)
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), metavar="DIR", help="model directory")
    p.add_argument("--config", "-c", metavar="FILE", help="configuration giving [classifier] thresholds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--scores-out", metavar="FILE", help="write path<TAB>label<TAB>spam_probability")
    p.add_argument("--plot", metavar="FILE.png", help="draw the ROC curve and threshold trade-off")
    p.set_defaults(func=cmd_evaluate)


def _messages(args: argparse.Namespace, skipped: Skipped) -> Iterator[LabelledMessage]:
    """The labelled mail the arguments name; what is not a regular file goes to ``skipped``."""
    if not (args.ham or args.spam or args.corpus):
        raise UsageError("give --ham/--spam paths or --corpus with --split-file")
    if bool(args.corpus) != bool(args.split_file):
        raise UsageError("--corpus and --split-file go together")
    try:
        labels = read_split_file(args.split_file, args.split) if args.split_file else None
        yield from iter_corpus(tuple(args.ham), tuple(args.spam), tuple(args.corpus), labels, skipped)
    except SourceError as e:
        raise UsageError(str(e)) from e


def _progress(desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        return lambda it: it
    return lambda it: tqdm(it, desc=desc, unit=" msg", file=sys.stderr, disable=None)


def _warn_skipped(skipped: Skipped) -> None:
    if skipped.count:
        print(f"warning: {skipped.summary()}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from milterfilters.classifier.model import load_model, save_model
    from milterfilters.classifier.training import TrainingError, collect, train, update
    from milterfilters.classifier.vectorize import FeatureSettings

    started = time.perf_counter()
    out = Path(args.out)
    old = None
    if args.update:
        old = load_model(out)
        settings = old.settings
    else:
        if not 10 <= args.hash_bits <= 24:
            raise UsageError("--hash-bits must be between 10 and 24")
        settings = FeatureSettings(n_features_log2=args.hash_bits)
    skipped = Skipped()
    data = collect(
        _messages(args, skipped),
        settings,
        max_per_class=args.max_per_class,
        seed=args.seed,
        progress=_progress("reading"),
    )
    data.sources = {Path(p).name for p in (*args.ham, *args.spam, *args.corpus)}
    if args.split_file:
        data.sources.add(f"{Path(args.split_file).name} [{args.split}]")
    try:
        model = update(old, data) if old is not None else train(data, settings, c=args.c, seed=args.seed)
    except TrainingError as e:
        raise UsageError(str(e)) from e
    model.metadata["training_seconds"] = round(time.perf_counter() - started, 2)
    save_model(model, out)
    summary = data.summary()
    cv = model.metadata.get("cross_validation", {})
    print(
        f"{'updated' if old else 'trained'} {out}: {summary['ham']} ham, {summary['spam']} spam "
        f"({summary['duplicates_dropped']} duplicates dropped)"
        + (f" ({skipped.count} skipped: not regular files)" if skipped.count else "")
        + f" in {model.metadata['training_seconds']:.1f}s"
    )
    _warn_skipped(skipped)
    if cv and not old:
        print(
            f"cross-validation: AUC {cv['auc']:.5f}, 1-ROCA {cv['one_minus_roca_percent']:.4f}%, "
            f"spam recall at <=0.1% ham misclassified {100 * cv['recall_at_low_fp']:.1f}%"
        )
    return 0


def _thresholds(config_path: str | None) -> tuple[float, float]:
    """``spam_threshold`` and ``high_threshold`` of ``[classifier]`` (defaults without a config)."""
    from milterfilters.classifier.filter import ClassifierOptions
    from milterfilters.config import load_config

    options = (
        ClassifierOptions() if config_path is None else load_config(config_path).filter("classifier").options
    )
    return float(options.spam_threshold), float(options.high_threshold)


def _score(
    messages: Iterable[LabelledMessage], model_dir: str
) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    import numpy as np

    from milterfilters.classifier.model import load_model

    model = load_model(model_dir)
    names, labels, scores = [], [], []
    elapsed = 0.0
    for message in _progress("scoring")(messages):
        t = time.perf_counter()
        p = model.score_raw(message.raw)
        elapsed += time.perf_counter() - t
        names.append(message.name)
        labels.append(1 if message.label == "spam" else 0)
        scores.append(p)
    return names, np.array(labels), np.array(scores), elapsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    from milterfilters.classifier.evaluation import summarize

    threshold, high = _thresholds(args.config)
    skipped = Skipped()
    names, labels, scores, elapsed = _score(_messages(args, skipped), args.model)
    _warn_skipped(skipped)
    if not len(labels):
        raise UsageError("no messages to evaluate")
    result = summarize(labels, scores, threshold)
    if args.scores_out:
        with open(args.scores_out, "w") as f:
            for name, label, score in zip(names, labels, scores, strict=True):
                f.write(f"{name}\t{'spam' if label else 'ham'}\t{score:.6f}\n")
    if args.plot:
        from milterfilters.classifier.plot import plot_evaluation

        plot_evaluation(labels, scores, threshold, args.plot)
    ms = 1000 * elapsed / len(labels)
    at_high = summarize(labels, scores, high)
    if args.json:
        extra = {
            "high_threshold": high,
            "high_false_positives": at_high.false_positives,
            "high_false_negatives": at_high.false_negatives,
            "ms_per_message": round(ms, 3),
            "skipped": skipped.count,
        }
        print(json.dumps(result.as_dict() | extra, indent=2))
        return 0
    print(f"messages: {result.ham} ham, {result.spam} spam, {skipped.count} skipped  ({ms:.2f} ms/message)")
    print(f"ROC AUC: {result.auc:.5f}   1-ROCA: {result.one_minus_roca_percent:.4f}%")
    print(
        f"at threshold {threshold:g}: {result.false_positives} false positives (ham as spam), "
        f"{result.false_negatives} false negatives (spam missed)"
    )
    print(
        f"at high threshold {high:g}: {at_high.false_positives} false positives, "
        f"{at_high.false_negatives} false negatives"
    )
    recall = 100 * result.recall_at_low_fp
    print(f"spam recall at <={100 * result.max_fp_rate:g}% ham misclassified: {recall:.1f}%")
    return 0
