"""Classifier figures on this machine: per-message latency, model load time, memory, training
time, accuracy on the test split, and a time-ordered split (train on older mail, test newer).

    .venv/bin/python benchmarks/bench_classifier.py [--time-split]

Pinned to one core; BLAS threads limited to one.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import ARCHIVE, SPLIT, Mail, load_all, load_split


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def train_and_score(train: list[Mail], test: list[Mail], trait_weight: float = 0.2) -> dict[str, float]:
    import numpy as np

    from milterfilters.classifier.evaluation import summarize
    from milterfilters.classifier.sources import LabelledMessage
    from milterfilters.classifier.training import collect
    from milterfilters.classifier.training import train as fit
    from milterfilters.classifier.vectorize import FeatureSettings

    settings = FeatureSettings(trait_weight=trait_weight)
    data = collect((LabelledMessage(m.path, m.label, m.raw) for m in train), settings)
    model = fit(data, settings)
    scores = np.array([model.score_raw(m.raw) for m in test])
    labels = np.array([m.is_spam for m in test], dtype=int)
    r = summarize(labels, scores)
    return {"auc": r.auc, "roca": r.one_minus_roca_percent, "recall": 100 * r.recall_at_low_fp}


def time_ordered(mails: list[Mail]) -> tuple[list[Mail], list[Mail]]:
    """Per class, the older 80% for training and the newer 20% for testing."""
    train, test = [], []
    for label in ("ham", "spam"):
        ordered = sorted((m for m in mails if m.label == label), key=Mail.date)
        cut = int(len(ordered) * 0.8)
        train += ordered[:cut]
        test += ordered[cut:]
    return train, test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-split", action="store_true", help="also run the time-ordered comparison")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rss_start = rss_mb()
    started = time.perf_counter()
    from milterfilters.classifier.model import load_model
    from milterfilters.classifier.paths import DEFAULT_MODEL_DIR

    model = load_model(DEFAULT_MODEL_DIR)
    load_s = time.perf_counter() - started
    rss_loaded = rss_mb()

    test = load_split("test")
    latencies = []
    for mail in test:
        t = time.perf_counter()
        model.score_raw(mail.raw)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    print(f"model load (imports included): {load_s:.2f} s")
    print(f"RSS: {rss_start:.0f} MB at start, {rss_loaded:.0f} MB with the model loaded")
    median = 1000 * statistics.median(latencies)
    p95 = 1000 * latencies[int(0.95 * len(latencies))]
    print(f"parse+features+predict, {len(test)} test messages: median {median:.3f} ms, p95 {p95:.3f} ms")
    print(f"RSS after scoring (the test split is held in memory too): {rss_mb():.0f} MB")

    train = load_split("train")
    with tempfile.TemporaryDirectory() as out:
        from milterfilters.cli import main as cli

        t = time.perf_counter()
        cli(["train", "--corpus", str(ARCHIVE), "--split-file", str(SPLIT), "--split", "train", "--out", out])
        took = time.perf_counter() - t
        print(f"training on the train split (read from the archive, {len(train)} messages): {took:.1f} s")

    if args.time_split:
        print("accuracy, words and traits together (shipped) or words alone:")
        mails = load_all()
        older, newer = time_ordered(mails)
        print(f"time-ordered split: train {len(older)} older messages, test {len(newer)} newer")
        for label, weight in (("words + traits (shipped)", 0.2), ("words only (traits off)", 0.0)):
            r = train_and_score(older, newer, weight)
            print(
                f"  {label:26s} AUC {r['auc']:.5f}  1-ROCA {r['roca']:.4f}%  recall@0.1%FP {r['recall']:.1f}%"
            )
        for label, weight in (("words + traits (shipped)", 0.2), ("words only (traits off)", 0.0)):
            r = train_and_score(train, test, weight)
            figures = f"AUC {r['auc']:.5f}  1-ROCA {r['roca']:.4f}%  recall@0.1%FP {r['recall']:.1f}%"
            print(f"  test split, {label:26s} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
