"""What one model accumulates while the sets stream past, and the Result it becomes.

Executors (local, Ray) only produce per-set scores; a ``ModelCollector`` per model turns them
into records in plan order, so every entry point gets the same results from the same scores.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch

from .. import __version__
from ..metrics import deployment
from ..metrics.classification import edited_digit_metrics, flip_rate
from ..models.load import LoadedModel
from ..results import Environment, ModelInfo, Result, SetMetrics, ShiftRecord
from ..shifts.euro import EDITED_DIGITS
from ..shifts.suite import Suite
from . import ks_cache
from .scoring import SetScore, set_id
from .seen import SeenInTraining
from .seen import resolve as seen_in_training

CONVENTIONS = {
    "accuracy_ci": "95% Wilson score interval",
    "ece": "top-label, 15 equal-width bins, L1 (Guo et al. 2017)",
    "brier": "mean over samples of sum_k (p_k - y_k)^2, range [0, 2]",
    "nll": "mean -log p(true class)",
    "flip_rate": "fraction of images whose prediction differs from the same clean image's",
    "fpr95": "Hendrycks & Gimpel: MNIST test is the positive class; fraction of OOD images "
             "accepted at the threshold that accepts 95% of MNIST test images",
    "selective": "max softmax probability; threshold = the one accepting target_coverage of the clean "
                 "test digits, applied unchanged to every set; accepted_error_rate = wrong and "
                 "accepted, over all images; AURC over the risk-coverage step curve (ties enter "
                 "together); misclassification AUROC: correct images positive",
    "conformal": deployment.conformal.CALIBRATION,
    "detection": deployment.detection.TEST,
}


@dataclass
class RunOutput:
    result: Result
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # set id -> int8 preds


def environment(device: torch.device) -> Environment:
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return Environment(
        python=platform.python_version(), torch=str(torch.__version__), device=str(device),
        torchvision=str(torchvision.__version__), robustmnist=__version__,
        platform=platform.platform(), threads=torch.get_num_threads(), device_name=name or "",
    )


def model_info(model: LoadedModel, name: str | None = None) -> ModelInfo:
    return ModelInfo(
        path=model.path, sha256=model.sha256, format=model.format,
        preprocess=model.preprocess.to_string(), preprocess_spec=model.preprocess.to_dict(),
        name=name or model.name, arch=model.arch, n_params=model.n_params, metadata=model.metadata,
    )


def suite_info(suite: Suite | None, n: int) -> dict:
    if suite is None:
        return {"name": None, "n": n}
    return {"name": suite.name, "source": os.path.basename(suite.source), "levels": suite.levels,
            "severities": list(suite.severities), "shifts": suite.shift_names, "n": n}


class ModelCollector:
    """One model's records, predictions and stage timings while a run goes."""

    def __init__(self, model: LoadedModel, name: str | None = None, shared: bool = False,
                 trained_on: str | list[str] | None = None,
                 target_coverage: float = deployment.selective.DEFAULT_TARGET_COVERAGE,
                 alpha: float = deployment.conformal.DEFAULT_ALPHA):
        self.model = model
        self.name = name
        self.shared = shared  # one of several models scored on the same sets
        self.prior_total = 0.0  # seconds an interrupted run spent before resume
        self.resumed = 0  # sets taken from that run
        # families seen in training: the checkpoint's record plus trained_on (seen.py)
        self.seen = seen_in_training(model.metadata, trained_on)
        self.records: list[ShiftRecord] = []
        self.predictions: dict[str, np.ndarray] = {}
        self.timings = {"load_data": 0.0, "generate": 0.0, "score": 0.0, "metrics": 0.0}
        self.clean_m: dict = {}
        self.clean_logits: np.ndarray | None = None
        self.clean_preds: np.ndarray | None = None
        self.target_coverage, self.alpha = target_coverage, alpha
        self.calibration: deployment.Calibration | None = None  # fixed on clean, used on every set
        self.clean_prefix: dict | None = None  # the first n's accuracy, where clean is all digits

    def add_clean(self, unit: SetScore, labels: np.ndarray, whole: SetScore | None = None,
                  whole_labels: np.ndarray | None = None) -> None:
        """``unit``: the first n clean digits (what shifted sets pair with: flip rate, OOD);
        ``whole``: every clean digit (scoring.whole_clean), the clean record where given."""
        self.timings["score"] += unit.score_s
        self.timings["metrics"] += unit.metrics_s
        self.clean_logits = unit.logits
        self.clean_preds = unit.preds
        self.clean_m = unit.metrics
        self.clean_prefix = None
        self.predictions = {"clean": unit.preds, "labels": labels.astype(np.int8)}
        if whole is not None:
            self.timings["score"] += whole.score_s
            self.timings["metrics"] += whole.metrics_s
            self.clean_m = whole.metrics
            self.clean_prefix = {"n": len(unit.preds), "accuracy": unit.metrics["accuracy"],
                                 "accuracy_ci": unit.metrics["accuracy_ci"]}
            # predictions follow the record (clean.n): consumers take the first n of them
            self.predictions = {"clean": whole.preds, "labels": whole_labels.astype(np.int8)}
        # deployment numbers calibrate on the first n (the digits shifted sets are made from, split
        # by position: metrics/conformal.py), so the clean record's come from them too
        t = time.perf_counter()
        known = ks_cache.load()
        self.calibration = deployment.calibrate(unit.logits, labels, self.target_coverage, self.alpha)
        ks_cache.save(known)  # calibrate met every critical value this run needs (the false alarms)
        self.clean_m = {**self.clean_m, **deployment.clean_metrics(self.calibration, unit.logits, labels)}
        self.timings["deployment"] = self.timings.get("deployment", 0.0) + time.perf_counter() - t

    def add_shift(self, unit: SetScore, shift, severity: int, params: dict, sha256: str, cached: bool,
                  labels: np.ndarray, chunks: list[str] | None = None) -> None:
        """``labels`` are only stored for generated sets (a transformed set has clean's labels)."""
        paired = shift.kind != "generative"
        self.timings["score"] += unit.score_s
        self.timings["metrics"] += unit.metrics_s
        t = time.perf_counter()
        deploy = deployment.deployment_metrics(self.calibration, unit.logits, labels)
        self.timings["deployment"] = self.timings.get("deployment", 0.0) + time.perf_counter() - t
        self.records.append(ShiftRecord(
            **unit.metrics, **deploy, name=shift.name, family=shift.family, severity=severity, version=shift.version,
            sha256=sha256, params=params, cached=cached, chunks=chunks or [],
            flip_rate=flip_rate(unit.preds, self.clean_preds) if paired else None,
            edited=edited_digit_metrics(labels, unit.preds, EDITED_DIGITS[shift.name])
            if shift.name in EDITED_DIGITS else None,
            seen=self.seen.covers(shift.family),
        ))
        self.predictions[set_id(shift.name, severity)] = unit.preds
        if not paired:
            self.predictions[set_id(shift.name, severity) + ":labels"] = labels.astype(np.int8)

    def resume_from(self, prior: RunOutput) -> None:
        """Count an interrupted run's time and stages as this run's own."""
        self.prior_total = float(prior.result.timings.get("total", 0.0))
        for k, v in prior.result.timings.items():
            if k != "total" and isinstance(v, int | float):
                self.timings[k] = self.timings.get(k, 0.0) + v

    def take_prior(self, prior: RunOutput, record: ShiftRecord) -> None:
        """A set the interrupted run finished: its record and predictions, as they were."""
        sid = set_id(record.name, record.severity)
        self.records.append(record)
        self.predictions[sid] = prior.predictions[sid]
        if sid + ":labels" in prior.predictions:
            self.predictions[sid + ":labels"] = prior.predictions[sid + ":labels"]
        self.resumed += 1

    def output(self, suite: Suite | None, n_clean: int, seed: int, t_start: float, execution: dict | None,
               partial: bool, ood_records: list = (), real_records: list | None = None,
               adversarial=None) -> RunOutput:
        """The Result so far (a snapshot: a partial output must not grow later)."""
        timings = dict(self.timings)
        # several models share the wall clock, so each one's total is the sum of its own stages
        # (which already hold a resumed run's earlier stages); one model's is the wall clock
        timings["total"] = sum(timings.values()) if self.shared else \
            self.prior_total + time.perf_counter() - t_start
        info = dict(execution or {})
        if self.model.forward_path is not None:
            info["forward_path"] = self.model.forward_path.to_dict()
        if self.resumed:
            info["resumed_sets"] = self.resumed
        ood_records = list(ood_records)
        clean = SetMetrics(**self.clean_m)
        result = Result(
            model=model_info(self.model, self.name),
            environment=environment(self.model.device),
            clean=clean,
            suite=suite_info(suite, n_clean),
            seed=seed,
            shifts=list(self.records),
            ood=ood_records,
            real=real_records or [],
            summary=summarise(self.clean_m["accuracy"], self.records, ood_records, real_records or [],
                              adversarial, seen=self.seen, clean=clean, clean_prefix=self.clean_prefix),
            adversarial=adversarial,
            timings={k: round(v, 4) for k, v in timings.items()},
            conventions=CONVENTIONS,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            execution=info,
            partial=partial,
        )
        return RunOutput(result, dict(self.predictions))


def summarise(clean_acc: float, records: list[ShiftRecord], ood_records: list, real_records=(),
              adversarial=None, seen: SeenInTraining | None = None, clean: SetMetrics | None = None,
              clean_prefix: dict | None = None) -> dict:
    """Headline numbers over the shifts not seen in training; the seen ones apart.
    ``clean_prefix``: clean accuracy on the first n digits, the ones shifted sets are made from
    (the clean record itself is every digit)."""
    summary: dict = {"clean_accuracy": clean_acc}
    if clean_prefix:
        summary["clean_prefix"] = clean_prefix
    deploy = deployment.summarise(clean, [r for r in records if not r.seen]) if clean is not None else None
    if deploy is not None:
        summary["deployment"] = deploy
    seen_records = [r for r in records if r.seen]
    if seen or seen_records:
        summary["seen_in_training"] = {
            **(seen or SeenInTraining()).to_dict(),
            "n_sets": len(seen_records),
            "mean_accuracy": float(np.mean([r.accuracy for r in seen_records]))
            if seen_records else None,
        }
    all_records, records = records, [r for r in records if not r.seen]
    if all_records:
        fam: dict[str, list[float]] = {}
        for r in all_records:  # a breakdown, so seen families too (marked in seen_in_training)
            fam.setdefault(r.family, []).append(r.accuracy)
        summary["per_family"] = {k: float(np.mean(v)) for k, v in fam.items()}
    if records:
        accs = [r.accuracy for r in records]
        worst = min(records, key=lambda r: r.accuracy)
        sev: dict[int, list[float]] = {}
        for r in records:
            sev.setdefault(r.severity, []).append(r.accuracy)
        summary.update(
            mean_shifted_accuracy=float(np.mean(accs)),
            mean_error=float(1 - np.mean(accs)),
            worst_shift={"name": worst.name, "severity": worst.severity, "accuracy": worst.accuracy},
            per_severity={str(k): float(np.mean(v)) for k, v in sorted(sev.items())},
        )
    if ood_records:
        summary["ood_mean_auroc"] = float(np.mean([o.scores["msp"]["auroc"] for o in ood_records]))
    if real_records:
        summary["real"] = {r.name: {"accuracy": r.accuracy, "closest_shift": (r.closest_shifts or [{}])[0].get("name")}
                           for r in real_records}
    if adversarial is not None and adversarial.records:
        last = adversarial.records[-1]  # the largest radius: the threat model's headline number
        summary["robust_accuracy"] = {"accuracy": last.robust_accuracy, "norm": adversarial.norm,
                                      "eps": last.eps, "attacks": list(adversarial.attacks), "n": last.n}
    return summary
