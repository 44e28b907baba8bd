"""Result dataclasses ⇄ results.json. Later features extend the schema; they never rename.

The report is a pure function of this JSON, so everything a report shows lives here
(including small gallery thumbnails as base64 PNG).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .fileio import atomic_write_json

SCHEMA_VERSION = 1


@dataclass
class ModelInfo:
    path: str
    sha256: str
    format: str  # torchscript | checkpoint | state_dict | pickle | onnx | safetensors | keras | skops |
    #              npz-mlp | module | sklearn | callable | predictions (models/load.py)
    preprocess: str  # canonical spec string (see models/preprocess.py)
    preprocess_spec: dict = field(default_factory=dict)
    name: str = ""
    arch: str | None = None
    n_params: int | None = None
    metadata: dict = field(default_factory=dict)  # training config/history from a checkpoint


@dataclass
class Environment:
    python: str
    torch: str
    device: str
    torchvision: str = ""
    robustmnist: str = ""
    platform: str = ""
    threads: int = 0
    device_name: str = ""


@dataclass
class SetMetrics:
    n: int
    accuracy: float
    accuracy_ci: list[float]
    error: float
    per_class_accuracy: list[float | None]
    per_class_n: list[int]
    confusion: list[list[int]]
    ece: float
    nll: float
    brier: float
    mean_confidence: float
    reliability: dict = field(default_factory=dict)
    gallery: dict = field(default_factory=dict)  # {"samples": [...], "misclassified": [...]}
    # does the model know when it is wrong (metrics/deployment.py): at the clean MSP threshold,
    # conformal sets calibrated on clean digits, a BBSD monitor; None in results made before them
    selective: dict | None = None
    conformal: dict | None = None
    detection: dict | None = None


@dataclass
class ShiftRecord(SetMetrics):
    name: str = ""
    family: str = ""
    severity: int = 0
    version: int = 1
    sha256: str = ""
    params: dict = field(default_factory=dict)
    flip_rate: float | None = None  # None for generated sets (no clean twin)
    cached: bool = False
    chunks: list[str] = field(default_factory=list)  # short sha256 per 500-image chunk (prefix checks)
    edited: dict | None = None  # shifts that edit some digits only (euro): metrics on those
    seen: bool = False  # its family was seen in training: left out of the headline numbers


@dataclass
class OODRecord:
    name: str
    n: int
    scores: dict  # {"msp"|"max_logit"|"energy": {"auroc", "fpr95", "aupr_in", "aupr_out"}}
    mean_confidence: float
    frac_confidence_over_0_9: float
    frac_confidence_over_0_99: float
    predicted_histogram: list[int]
    sha256: str = ""
    description: str = ""
    convention: str = ""
    msp_histogram: dict = field(default_factory=dict)  # {"edges", "in", "out"} for plots
    gallery: dict = field(default_factory=dict)


@dataclass
class AdversarialRecord:
    """Worst case over every attack of the section at one radius (see attacks/evaluate.py)."""

    severity: int
    eps: float
    n: int
    clean_correct: int
    robust_accuracy: float
    robust_accuracy_ci: list[float]
    per_class_robust_accuracy: list[float | None]
    per_attack: dict  # attack -> {"robust_accuracy", "success_rate", "seconds", "rejected"}
    median_norm: float | None  # of the adversarial perturbations found
    seconds: float = 0.0
    gallery: list[dict] = field(default_factory=list)  # {"index", "true", "pred", "confidence", "png", ...}


@dataclass
class AdversarialSection:
    attacks: list[str]
    norm: str
    n: int  # images attacked: a prefix of the clean set
    n_available: int
    seed: int
    restarts: int = 1
    steps: int = 40
    black_box: bool = False
    implementations: dict = field(default_factory=dict)
    prefix: str = ""  # why n images (a time budget, --attack-n, all)
    eta_seconds: float | None = None
    records: list[AdversarialRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # gradient-masking checks that fired
    checks: dict = field(default_factory=dict)


@dataclass
class RealRecord(SetMetrics):
    """A real digit set (see real.py): its metrics, how it differs from clean, what it resembles."""

    name: str = ""
    source: str = ""  # what the set is, in words
    sha256: str = ""  # of the framed uint8 images + labels
    per_class_change: list[float | None] = field(default_factory=list)  # real − clean, per digit
    confusion_change: list[list[float]] = field(default_factory=list)  # row rates, real − clean
    closest_shifts: list[dict] = field(default_factory=list)  # {"name", "severity", "family", ...}
    framing: dict = field(default_factory=dict)  # {"before_png", "after_png", "indices"}


@dataclass
class Result:
    model: ModelInfo
    environment: Environment
    clean: SetMetrics
    suite: dict = field(default_factory=dict)  # {"name", "source", "levels", "severities", "n"}
    seed: int = 0
    shifts: list[ShiftRecord] = field(default_factory=list)
    ood: list[OODRecord] = field(default_factory=list)
    real: list[RealRecord] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)  # {"file", "sha256"} per-image predictions
    adversarial: AdversarialSection | None = None
    conventions: dict = field(default_factory=dict)
    created: str = ""
    # forward path, n and why, time budget and estimate (run/collector.py, run/budget.py)
    execution: dict = field(default_factory=dict)
    partial: bool = False  # an interrupted run: some sets (or OOD) missing; eval --resume finishes it
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        # schema_version first: it is what a reader checks before anything else
        return {"schema_version": d.pop("schema_version"), **d}

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "results") -> Result:
        """``d`` (a parsed results.json) as dataclasses, after checking it against the schema
        (results.schema.json); ``source`` names it in the one-line error."""
        from .results_schema import check

        version = d.get("schema_version") if isinstance(d, dict) else None
        if version is not None and version != SCHEMA_VERSION:
            # before the schema: a newer file deserves "upgrade", not a list of unknown fields
            raise UserError(
                f"results schema_version {version!r} is not supported (this robustmnist reads "
                f"{SCHEMA_VERSION}); re-run robustmnist eval with this version"
            )
        check(d, source)
        # The schema requires every field without a default below (tests/test_results_schema.py);
        # .get() is for the fields added after schema_version 1 first shipped.
        return cls(
            model=_build(ModelInfo, d["model"]),
            environment=_build(Environment, d["environment"]),
            clean=_build(SetMetrics, d["clean"]),
            suite=d["suite"],
            seed=d["seed"],
            shifts=[_build(ShiftRecord, s) for s in d["shifts"]],
            ood=[_build(OODRecord, o) for o in d["ood"]],
            real=[_build(RealRecord, o) for o in d.get("real", [])],
            summary=d["summary"],
            timings=d["timings"],
            predictions=d["predictions"],
            adversarial=_adversarial(d.get("adversarial")),
            conventions=d["conventions"],
            created=d["created"],
            execution=d.get("execution", {}),
            partial=bool(d.get("partial", False)),
            schema_version=version,
        )

    @classmethod
    def load(cls, path: str | Path) -> Result:
        p = Path(path)
        if p.is_dir():  # an eval's --out folder: its results.json
            if not (p / "results.json").is_file():
                raise UserError(f"{p} is a folder without a results.json in it")
            p = p / "results.json"
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"results file {p} does not exist") from None
        except OSError as exc:  # unreadable: permissions, a device, ...
            raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{p} is not a results.json file ({exc})") from None
        if not isinstance(d, dict):
            raise UserError(f"{p} is not a results.json file")
        return cls.from_dict(d, source=str(p))


def _adversarial(d: dict | None) -> AdversarialSection | None:
    if not d:
        return None
    sec = _build(AdversarialSection, d)
    sec.records = [_build(AdversarialRecord, r) for r in d.get("records", [])]
    return sec


def _build(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
