"""Split conformal prediction sets calibrated on clean digits (LAC / "THR" score, Sadinle et al. 2019).

Score s = 1 - p_y; q-hat = the ceil((n+1)(1-alpha))-th smallest calibration score; the set of an
image is every class with 1 - p_k <= q-hat. Coverage >= 1 - alpha holds only while the scored
images are exchangeable with the calibration digits; a shift breaks that, and how far coverage
falls per shift and level is what a record shows.

Calibration rule (cross-fit halves, so no image is ever scored with a q-hat its own clean digit
helped set, and no extra forward pass is needed): the clean digits at odd positions calibrate the
images at even positions and the clean digits at even positions calibrate the odd ones. A shifted
set's image i is a transform of clean digit i (generated sets have no clean twin; the same split
applies to them), so calibration and scored digits are disjoint for every set.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_ALPHA = 0.1
METHOD = "split conformal, LAC score 1 - p_y (Sadinle et al. 2019)"
CALIBRATION = ("cross-fit halves of the clean test digits: those at odd positions calibrate the "
               "images at even positions and vice versa (image i of a shifted set is a transform "
               "of clean digit i, so calibration digits never include a scored image's own)")


def lac_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    return 1.0 - probs[np.arange(len(labels)), labels].astype(np.float64)


def conformal_quantile(scores: np.ndarray, alpha: float = DEFAULT_ALPHA) -> float:
    """The finite-sample-corrected (1 - alpha) quantile; inf (every class) when n is too small."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha=` must be in (0, 1), got {alpha}")
    n = len(scores)
    k = math.ceil((n + 1) * (1 - alpha))
    if n == 0 or k > n:
        return math.inf
    return float(np.partition(np.asarray(scores, dtype=np.float64), k - 1)[k - 1])


def prediction_sets(probs: np.ndarray, qhat: np.ndarray | float) -> np.ndarray:
    """Boolean N×K: class k is in image i's set when 1 - p_ik <= qhat (per image or one value)."""
    q = np.asarray(qhat, dtype=np.float64)
    if q.ndim == 1:
        q = q[:, None]
    return (1.0 - probs.astype(np.float64)) <= q


def cross_fit_qhat(clean_probs: np.ndarray, clean_labels: np.ndarray,
                   alpha: float = DEFAULT_ALPHA) -> tuple[float, float]:
    """(q-hat for even-position images from the odd clean digits, q-hat for odd ones from the even)."""
    s = lac_scores(clean_probs, clean_labels)
    return conformal_quantile(s[1::2], alpha), conformal_quantile(s[0::2], alpha)


def per_image_qhat(n: int, qhats: tuple[float, float]) -> np.ndarray:
    q = np.empty(n, dtype=np.float64)
    q[0::2], q[1::2] = qhats
    return q


def conformal_metrics(probs: np.ndarray, labels: np.ndarray, qhats: tuple[float, float],
                      alpha: float = DEFAULT_ALPHA) -> dict:
    """Empirical coverage and mean set size of one set at the clean cross-fit q-hats."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    sets = prediction_sets(probs, per_image_qhat(n, qhats))
    finite = [q for q in qhats if math.isfinite(q)]
    return {
        "alpha": float(alpha),
        "qhat": float(np.mean(finite)) if finite else None,  # the halves' mean, for display
        "qhat_halves": [q if math.isfinite(q) else None for q in qhats],
        "coverage": float(sets[np.arange(n), labels].mean()) if n else 0.0,
        "mean_set_size": float(sets.sum(axis=1).mean()) if n else 0.0,
        "empty_set_rate": float((~sets.any(axis=1)).mean()) if n else 0.0,
        "method": METHOD,
        "calibration": CALIBRATION,
    }
