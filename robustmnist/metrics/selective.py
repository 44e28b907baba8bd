"""Selective prediction: does a confidence threshold set on clean digits still filter the errors?

The confidence is the max softmax probability (MSP, Hendrycks & Gimpel 2017). The threshold is the
one that accepts ``target_coverage`` of the clean test digits; every other set is scored at that
same threshold, as a deployed reader would be. Risk-coverage and AURC follow Geifman & El-Yaniv
(2017): images are accepted in order of falling confidence; ties enter together (float32 softmax
saturates at 1.0 for many MNIST digits, so the order inside a tie is no information).
"""

from __future__ import annotations

import math

import numpy as np

from .classification import softmax_and_msp

DEFAULT_TARGET_COVERAGE = 0.95
CURVE_POINTS = 20  # coverages 0.05, 0.10, ..., 1.0 kept per record for the report's curves


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """MSP in float64 from logits: exp(max - logsumexp) keeps the order float32 softmax loses at 1.0."""
    return softmax_and_msp(logits)[1]


def clean_threshold(confidence: np.ndarray, target_coverage: float = DEFAULT_TARGET_COVERAGE) -> float:
    """The largest t with share(confidence >= t) >= target_coverage (ties at t all accepted)."""
    if not 0.0 < target_coverage <= 1.0:
        raise ValueError(f"`target_coverage=` must be in (0, 1], got {target_coverage}")
    c = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    if len(c) == 0:
        return 0.0
    k = max(1, math.ceil(target_coverage * len(c) - 1e-9))
    return float(c[k - 1])


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk) at each distinct confidence, most confident first."""
    cov, risk, _ = _ranked(np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool))
    return cov, risk


def _ranked(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One sort for all three uses: (coverage, risk) per tie run and the misclassification AUROC."""
    n = len(conf)
    if n == 0:
        return np.zeros(0), np.zeros(0), None
    order = np.argsort(-conf, kind="stable")
    ranked, wrong = conf[order], ~correct[order]
    errors = np.cumsum(wrong)
    # the end of each run of equal confidences: a threshold accepts a whole tie or none of it
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    accepted = ends + 1
    return accepted / n, errors[ends] / accepted, _auroc_from_runs(wrong, ends, n)


def _auroc_from_runs(wrong: np.ndarray, ends: np.ndarray, n: int) -> float | None:
    """The Mann-Whitney AUROC from tie runs of the descending order: each run's images share the
    average ascending rank (what scipy's rankdata gives), exact half-integers in float64."""
    n_neg = int(wrong.sum())
    n_pos = n - n_neg
    if n_pos == 0 or n_neg == 0:
        return None
    starts = np.r_[0, ends[:-1] + 1]
    # descending positions [s, e] hold ascending ranks n-e .. n-s, whose mean is n - (s+e)/2
    avg_rank = n - (starts + ends) / 2.0
    pos_per_run = np.diff(np.r_[0, np.cumsum(~wrong)[ends]])
    rank_sum = float(np.sum(avg_rank * pos_per_run))
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage step curve (without ties: the mean over k of risk at the top k)."""
    cov, risk = risk_coverage(confidence, correct)
    return _area(cov, risk)


def _area(cov: np.ndarray, risk: np.ndarray) -> float:
    if len(cov) == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, cov]) * risk))


def misclassification_auroc(confidence: np.ndarray, correct: np.ndarray) -> float | None:
    """P(a correct image is more confident than a wrong one), ties half; None without both kinds."""
    return _ranked(np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool))[2]


def curve_on_grid(confidence: np.ndarray, correct: np.ndarray, points: int = CURVE_POINTS) -> dict:
    """Selective risk at fixed coverages (the smallest tie-respecting coverage at or above each)."""
    return _on_grid(*risk_coverage(confidence, correct), points)


def _on_grid(cov: np.ndarray, risk: np.ndarray, points: int = CURVE_POINTS) -> dict:
    grid = np.arange(1, points + 1) / points
    if len(cov) == 0:
        return {"coverage": grid.round(4).tolist(), "risk": [None] * points}
    idx = np.minimum(np.searchsorted(cov, grid - 1e-12, side="left"), len(cov) - 1)
    return {"coverage": grid.round(4).tolist(), "risk": [round(float(r), 6) for r in risk[idx]]}


def selective_metrics(confidence: np.ndarray, correct: np.ndarray, threshold: float,
                      target_coverage: float = DEFAULT_TARGET_COVERAGE) -> dict:
    """One set at the clean threshold: what is accepted, how often it is right, the silent errors."""
    conf = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n = len(conf)
    accepted = conf >= threshold
    n_acc = int(accepted.sum())
    cov, risk, auroc = _ranked(conf, correct)
    return {
        "threshold": float(threshold),
        "target_coverage": float(target_coverage),
        "coverage": n_acc / n if n else 0.0,
        "selective_accuracy": float(correct[accepted].mean()) if n_acc else None,
        # of ALL images: wrong and still accepted, the errors nobody would look at
        "accepted_error_rate": float((accepted & ~correct).sum() / n) if n else 0.0,
        "aurc": _area(cov, risk),
        "misclassification_auroc": auroc,
        "risk_coverage": _on_grid(cov, risk),
    }
