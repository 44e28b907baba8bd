"""Does the model know when it is wrong? One set's selective-prediction, conformal and shift-detection
records, all at what the clean digits fix: the MSP threshold, the conformal q-hats, the monitor's
reference outputs. Pure functions of logits already computed: no extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import conformal, detection, selective
from .classification import softmax_and_msp


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
    probs, msp = softmax_and_msp(clean_logits)
    return Calibration(
        threshold=selective.clean_threshold(msp, target_coverage),
        target_coverage=target_coverage,
        qhats=conformal.cross_fit_qhat(probs, labels, alpha),
        alpha=alpha,
        reference=detection.reference(probs),
    )


def deployment_metrics(cal: Calibration, logits: np.ndarray, labels: np.ndarray) -> dict:
    """{"selective", "conformal", "detection"} of one set."""
    probs, msp = softmax_and_msp(logits)
    out = _labelled(cal, msp, probs, labels)
    out["detection"] = detection.detection_metrics(cal.reference, probs)
    return out


def clean_metrics(cal: Calibration, logits: np.ndarray, labels: np.ndarray) -> dict:
    """The clean record: in-sample selective numbers, held-out conformal coverage, the false alarm
    (clean batches against the clean reference: their power IS the false-alarm rate)."""
    probs, msp = softmax_and_msp(logits)
    out = _labelled(cal, msp, probs, labels)
    out["detection"] = detection.as_record(cal.reference, cal.reference.false_alarm, len(logits))
    return out


def _labelled(cal: Calibration, msp: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict:
    labels = np.asarray(labels, dtype=np.int64)
    correct = probs.argmax(axis=1) == labels
    return {
        "selective": selective.selective_metrics(msp, correct, cal.threshold,
                                                 cal.target_coverage),
        "conformal": conformal.conformal_metrics(probs, labels, cal.qhats, cal.alpha),
    }


# -- silent failures: accuracy falls, the threshold lets the errors through, the monitor sleeps ----
SILENT_DROP = 0.10  # accuracy at least 10 points below clean
SILENT_ACCEPTED = 0.5  # at least half of the errors pass the clean threshold
SILENT_POWER = 0.5  # the batch-of-100 monitor flags fewer than half of the batches
SILENT_BATCH = 100
SILENT_RULE = (f"accuracy >= {100 * SILENT_DROP:.0f} points below clean, >= {SILENT_ACCEPTED:.0%} of the errors "
               f"accepted at the clean threshold, and the monitor flags < {SILENT_POWER:.0%} of batches of "
               f"{SILENT_BATCH}")


def power_at(detection_record: dict | None, batch: int = SILENT_BATCH) -> float | None:
    """The detection power at ``batch`` (None when the set was too small or has no record)."""
    if not detection_record or batch not in detection_record.get("batch_sizes", []):
        return None
    return detection_record["power"][detection_record["batch_sizes"].index(batch)]


def errors_accepted(record) -> float | None:
    """Share of a set's errors the clean threshold accepts (accepted-error rate / error rate)."""
    sel = getattr(record, "selective", None)
    if not sel or record.error <= 0:
        return None
    return sel["accepted_error_rate"] / record.error


def silent_failure(record, clean_accuracy: float) -> dict | None:
    """The record's numbers when it is a silent failure (see SILENT_RULE), else None."""
    drop = clean_accuracy - record.accuracy
    accepted = errors_accepted(record)
    power = power_at(getattr(record, "detection", None))
    if drop < SILENT_DROP or accepted is None or accepted < SILENT_ACCEPTED or power is None \
            or power >= SILENT_POWER:
        return None
    return {"name": record.name, "family": record.family, "severity": record.severity,
            "accuracy": record.accuracy, "accuracy_drop": drop, "errors_accepted": accepted,
            "accepted_error_rate": record.selective["accepted_error_rate"], "power_100": power}


def summarise(clean, records) -> dict | None:
    """The run's deployment headline (summary["deployment"]); None for results without the records."""
    if not getattr(clean, "selective", None):
        return None
    recs = [r for r in records if getattr(r, "selective", None)]
    out: dict = {"threshold": clean.selective["threshold"],
                 "target_coverage": clean.selective["target_coverage"],
                 "alpha": clean.conformal["alpha"],
                 "clean_conformal_coverage": clean.conformal["coverage"],
                 "false_alarm": dict(zip(map(str, clean.detection["batch_sizes"]), clean.detection["false_alarm"],
                                         strict=True)),
                 "silent_rule": SILENT_RULE, "silent_failures": []}
    if not recs:
        return out
    worst = max(recs, key=lambda r: r.selective["accepted_error_rate"])
    low = min(recs, key=lambda r: r.conformal["coverage"])
    powers = [p for p in (power_at(r.detection) for r in recs) if p is not None]
    out.update(
        min_coverage=min(r.selective["coverage"] for r in recs),
        max_coverage=max(r.selective["coverage"] for r in recs),
        worst_accepted_error={"name": worst.name, "severity": worst.severity,
                              "accepted_error_rate": worst.selective["accepted_error_rate"]},
        min_conformal_coverage={"name": low.name, "severity": low.severity, "coverage": low.conformal["coverage"]},
        mean_power_100=float(np.mean(powers)) if powers else None,
        silent_failures=[s for s in (silent_failure(r, clean.accuracy) for r in recs) if s],
    )
    return out
