"""Does the model know when it is wrong? One set's selective-prediction, conformal and shift-detection
records, all at what the clean digits fix: the MSP threshold, the conformal q-hats, the monitor's
reference outputs. Pure functions of logits already computed: no extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import conformal, detection, selective
from .classification import softmax


@dataclass
class Calibration:
    """What a deployment fixes on clean digits and then leaves alone."""

    threshold: float
    target_coverage: float
    qhats: tuple[float, float]
    alpha: float
    reference: detection.Reference


def calibrate(clean_logits: np.ndarray, labels: np.ndarray,
              target_coverage: float = selective.DEFAULT_TARGET_COVERAGE,
              alpha: float = conformal.DEFAULT_ALPHA) -> Calibration:
    probs = softmax(clean_logits)
    return Calibration(
        threshold=selective.clean_threshold(selective.max_softmax(clean_logits), target_coverage),
        target_coverage=target_coverage,
        qhats=conformal.cross_fit_qhat(probs, labels, alpha),
        alpha=alpha,
        reference=detection.reference(probs),
    )


def deployment_metrics(cal: Calibration, logits: np.ndarray, labels: np.ndarray, key: str) -> dict:
    """{"selective", "conformal", "detection"} of one set (``key``: its id, seeds the batches)."""
    probs = softmax(logits)
    out = _labelled(cal, logits, probs, labels)
    out["detection"] = detection.detection_metrics(cal.reference, probs, key)
    return out


def clean_metrics(cal: Calibration, logits: np.ndarray, labels: np.ndarray) -> dict:
    """The clean record: in-sample selective numbers, held-out conformal coverage, the false alarm
    (clean batches against the clean reference: their power IS the false-alarm rate)."""
    out = _labelled(cal, logits, softmax(logits), labels)
    out["detection"] = detection.as_record(cal.reference, cal.reference.false_alarm, len(logits))
    return out


def _labelled(cal: Calibration, logits: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    correct = probs.argmax(axis=1) == labels
    return {
        "selective": selective.selective_metrics(selective.max_softmax(logits), correct, cal.threshold,
                                                 cal.target_coverage),
        "conformal": conformal.conformal_metrics(probs, labels, cal.qhats, cal.alpha),
    }
