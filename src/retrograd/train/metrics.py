"""Classification metrics on NumPy arrays: accuracy, balanced accuracy, per-class recall,
confusion matrix, negative log-likelihood and expected calibration error."""

from __future__ import annotations

import numpy as np


def _as_labels(y) -> np.ndarray:
    return np.asarray(y.numpy() if hasattr(y, "numpy") else y).astype(np.int64).reshape(-1)


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """counts[i, j] = samples of true class i predicted as j (scikit-learn's convention)."""
    t, p = _as_labels(y_true), _as_labels(y_pred)
    n = n_classes or int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def accuracy(y_true, y_pred) -> float:
    t, p = _as_labels(y_true), _as_labels(y_pred)
    return float(np.mean(t == p)) if t.size else float("nan")


def per_class_recall(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Recall of each class (nan for a class with no true sample)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes that occur in y_true (scikit-learn's definition)."""
    recall = per_class_recall(y_true, y_pred)
    return float(np.nanmean(recall)) if np.any(~np.isnan(recall)) else float("nan")


def nll(probs: np.ndarray, y_true) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    p = np.asarray(probs, dtype=np.float64)
    t = _as_labels(y_true)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], 1e-12, None))))


def calibration_bins(probs: np.ndarray, y_true, n_bins: int = 15):
    """(confidence, accuracy, count) per equal-width confidence bin over (0, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    t = _as_labels(y_true)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, confidence, minlength=n_bins) / count
        acc = np.bincount(which, correct, minlength=n_bins) / count
    return conf, acc, count


def expected_calibration_error(probs: np.ndarray, y_true, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / N) |accuracy_b - confidence_b| over n_bins equal-width bins of the
    top-class probability, each bin (lo, hi] (Guo et al. 2017)."""
    conf, acc, count = calibration_bins(probs, y_true, n_bins)
    used = count > 0
    return float(np.sum(count[used] / count.sum() * np.abs(acc[used] - conf[used])))


def classification_report(probs: np.ndarray, y_true) -> dict:
    """All the metrics above, as plain Python numbers (for metrics.json)."""
    p = np.asarray(probs)
    pred = p.argmax(axis=1)
    n_classes = p.shape[1]
    return {
        "accuracy": accuracy(y_true, pred),
        "balanced_accuracy": balanced_accuracy(y_true, pred),
        "per_class_recall": [None if np.isnan(r) else float(r)
                             for r in per_class_recall(y_true, pred, n_classes)],
        "nll": nll(p, y_true),
        "ece": expected_calibration_error(p, y_true),
        "confusion_matrix": confusion_matrix(y_true, pred, n_classes).tolist(),
    }
