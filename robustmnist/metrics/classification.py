"""Metrics, named as the literature names them. Pure functions on numpy arrays.

Conventions pinned here (and written into results.json):
- accuracy interval: 95% Wilson score interval.
- ECE: top-label confidence, 15 equal-width bins, L1 (Guo et al. 2017; torchmetrics default).
- NLL: mean −log p(true class).
- Brier: mean over samples of Σ_k (p_k − y_k)², range [0, 2].
- flip rate: fraction of images whose prediction differs from the same clean image's.
"""

from __future__ import annotations

import math

import numpy as np

N_CLASSES = 10
ECE_BINS = 15
Z95 = 1.959963984540054


def _shifted_exp(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row max, exp(logits - max), row sums) in float64. The row max over the transposed view:
    one elementwise pass per class instead of a reduction per 10-wide row (5x faster, exact)."""
    zmax = logits.T.max(axis=0).astype(np.float64)
    e = np.exp(logits.astype(np.float64) - zmax[:, None])
    return zmax, e, e.sum(axis=1, keepdims=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    _, e, s = _shifted_exp(logits)
    return (e / s).astype(np.float32)


def softmax_and_msp(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 softmax, float64 max softmax) from one exp pass. The MSP as exp(max - logsumexp)
    keeps the order that float32 softmax loses at 1.0 (selective prediction ranks by it)."""
    zmax, e, s = _shifted_exp(logits)
    return (e / s).astype(np.float32), np.exp(zmax - (zmax + np.log(s[:, 0])))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int = N_CLASSES) -> np.ndarray:
    """Rows: true class, columns: predicted class (counts)."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def per_class_accuracy(confusion: np.ndarray) -> list[float | None]:
    totals = confusion.sum(axis=1)
    return [float(confusion[i, i] / t) if t else None for i, t in enumerate(totals)]


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per-bin counts, accuracy and mean confidence over equal-width bins of [0, 1]."""
    idx = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (lo, hi] bins
    counts = np.bincount(idx, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=bins)
    conf_sum = np.bincount(idx, weights=confidence.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(counts > 0, acc_sum / counts, np.nan)
        conf = np.where(counts > 0, conf_sum / counts, np.nan)
    return {"bins": bins, "counts": counts.tolist(),
            "accuracy": [None if np.isnan(a) else float(a) for a in acc],
            "confidence": [None if np.isnan(c) else float(c) for c in conf]}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    if len(confidence) == 0:
        return 0.0
    r = reliability(confidence, correct, bins)
    n = len(confidence)
    total = 0.0
    for c, a, m in zip(r["counts"], r["accuracy"], r["confidence"], strict=True):
        if c:
            total += c / n * abs(a - m)
    return float(total)


def nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return 0.0
    onehot = np.zeros_like(probs, dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs.astype(np.float64) - onehot) ** 2).sum(axis=1).mean())


def flip_rate(preds: np.ndarray, clean_preds: np.ndarray) -> float:
    return float((preds != clean_preds).mean()) if len(preds) else 0.0


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict:
    """All label-based metrics of one set, as plain JSON-able values."""
    labels = np.asarray(labels, dtype=np.int64)
    logp = log_softmax(logits)
    probs = np.exp(logp).astype(np.float32)
    preds = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    correct = preds == labels
    n = int(len(labels))
    k = int(correct.sum())
    cm = confusion_matrix(labels, preds)
    acc = k / n if n else 0.0
    return {
        "n": n,
        "accuracy": acc,
        "accuracy_ci": list(wilson_interval(k, n)),
        "error": 1.0 - acc,
        "per_class_accuracy": per_class_accuracy(cm),
        "per_class_n": cm.sum(axis=1).tolist(),
        "confusion": cm.tolist(),
        "ece": expected_calibration_error(conf, correct),
        "nll": nll(logp, labels),
        "brier": brier(probs, labels),
        "mean_confidence": float(conf.mean()) if n else 0.0,
        "reliability": reliability(conf, correct),
    }


# -- out-of-distribution detection ---------------------------------------------------------------
# Convention (Hendrycks & Gimpel 2017): in-distribution (MNIST test) is the POSITIVE class and
# every score is "higher = more in-distribution". fpr95 is then the fraction of OOD images still
# accepted at the threshold that accepts 95% of MNIST test images. OpenOOD and pytorch-ood use
# the opposite convention (OOD positive); the two fpr95 numbers are not comparable.


def edited_digit_metrics(labels: np.ndarray, preds: np.ndarray, towards: dict[int, int]) -> dict | None:
    """Accuracy on the digits a shift edits (``towards``: digit -> the digit the edit imitates)
    and, per digit, the rate it is read as that other digit (e.g. a flagged 1 read as 7)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    sel = np.isin(labels, list(towards))
    n = int(sel.sum())
    if n == 0:
        return None
    rates = {}
    for digit, other in towards.items():
        mine = labels == digit
        if mine.any():
            rates[f"{digit}->{other}"] = float((preds[mine] == other).mean())
    return {"digits": sorted(towards), "n": n, "accuracy": float((preds[sel] == labels[sel]).mean()),
            "read_as_other": rates}
