"""ROC curve and threshold trade-off as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np


def plot_evaluation(labels: np.ndarray, scores: np.ndarray, threshold: float, path: str) -> None:
    """Draw the ROC curve (log false-positive axis) and FP/FN counts against the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fig, (roc, trade) = plt.subplots(1, 2, figsize=(11, 4.5))
    roc.plot(np.maximum(fpr, 1e-5), tpr)
    roc.set_xscale("log")
    roc.set_xlabel("ham misclassified (false-positive rate, log)")
    roc.set_ylabel("spam caught (recall)")
    roc.set_title("ROC")
    roc.axvline(0.001, color="grey", linestyle=":", label="0.1% ham")
    roc.legend(loc="lower right")
    grid = np.linspace(0, 1, 201)
    trade.plot(grid, [(scores[labels == 0] >= t).sum() for t in grid], label="false positives (ham)")
    trade.plot(grid, [(scores[labels == 1] < t).sum() for t in grid], label="false negatives (spam)")
    trade.axvline(threshold, color="grey", linestyle=":", label=f"threshold {threshold:g}")
    trade.set_yscale("symlog")
    trade.set_ylim(bottom=0)
    trade.set_xlabel("spam probability threshold")
    trade.set_ylabel("messages")
    trade.set_title("threshold trade-off")
    trade.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
