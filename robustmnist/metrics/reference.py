"""Benchmarking before deployment: CE/mCE against a reference, paired model comparison with
McNemar's exact test, and leaderboards.

mCE follows ImageNet-C (Hendrycks & Dietterich 2019) exactly, with our pinned reference
model in AlexNet's place (MNIST has no agreed reference):

    CE_c          = Σ_s E(f, s, c) / Σ_s E(ref, s, c)
    relative CE_c = Σ_s (E(f, s, c) − E(f, clean)) / Σ_s (E(ref, s, c) − E(ref, clean))
    mCE = mean_c CE_c,  relative mCE = mean_c relative CE_c

with E the top-1 error and s over the severities both results share. A ratio is only
comparable between results with the same reference (its name and sha256 go into the JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..results import Result

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
DEFAULT_REFERENCE = REFERENCE_DIR / "lenet5-default.json"


# -- reference and mCE --------------------------------------------------------------------------

@dataclass(frozen=True)
class RefSet:
    """What the reference measured on one set, and which images it measured it on."""

    error: float
    n: int
    sha256: str = ""
    chunks: tuple[str, ...] = ()
    version: int | None = None
    params: dict | None = None
    correct: np.ndarray | None = None  # bool per image: errors on any prefix of the set

    def error_at(self, n: int) -> float | None:
        if self.correct is not None and 0 < n <= len(self.correct):
            return float(1.0 - self.correct[:n].mean())
        return self.error if n == self.n else None


@dataclass(frozen=True)
class Reference:
    name: str
    sha256: str
    clean_error: float
    errors: dict[tuple[str, int], float]  # (shift, severity) -> top-1 error at the reference's n
    source: str
    set_sha256: dict[tuple[str, int], str] | None = None  # the images each error was measured on
    sets: dict[tuple[str, int], RefSet] = field(default_factory=dict)
    seed: int | None = None
    clean_correct: np.ndarray | None = None
    arch: str | None = None
    recipe: str = ""  # how the reference model was trained, in words ("" when not recorded)
    pinned: bool = False  # the reference shipped with robustmnist (DEFAULT_REFERENCE)

    def clean_error_at(self, n: int) -> float:
        if self.clean_correct is not None and 0 < n <= len(self.clean_correct):
            return float(1.0 - self.clean_correct[:n].mean())
        return self.clean_error


def _unpack(bits: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(bits, count=n).astype(bool)


def load_reference(path: str | Path | None = None) -> Reference:
    """A results.json (any model) or the pinned compact reference shipped with the package.

    The pinned reference (reference_version 2) carries each set's per-image correctness in a
    .npz beside it, so its error is known on the first n images for any n: nested sets make a
    run at --n 1000 the prefix of the reference's 10,000."""
    p = Path(path) if path else DEFAULT_REFERENCE
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"reference results {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"reference {p} is not a results.json file") from None
    try:
        bits = _load_correct_bits(p, d)
        sets = {}
        for r in d["shifts"]:
            key = (r["name"], int(r["severity"]))
            n = int(r.get("n", d.get("suite", {}).get("n", 0)) or 0)
            sid = f"{key[0]}@{key[1]}"
            sets[key] = RefSet(
                error=float(r.get("error", 1 - r["accuracy"])), n=n, sha256=r.get("sha256", ""),
                chunks=tuple(r.get("chunks", ())), version=r.get("version"), params=r.get("params"),
                correct=_unpack(bits[sid], n) if sid in bits else None)
        clean = d["clean"]
        return Reference(
            name=d["model"].get("name") or Path(d["model"]["path"]).stem,
            sha256=d["model"]["sha256"],
            clean_error=float(clean.get("error", 1 - clean["accuracy"])),
            errors={k: v.error for k, v in sets.items()},
            source=str(p),
            set_sha256={k: v.sha256 for k, v in sets.items()},
            sets=sets,
            seed=d.get("seed"),
            clean_correct=_unpack(bits["clean"], int(clean["n"])) if "clean" in bits else None,
            arch=d["model"].get("arch"),
            # the pinned reference keeps its training config under model.training; a results.json
            # of a robustmnist checkpoint under model.metadata.training.config
            recipe=training_recipe(d["model"].get("training")
                                   or ((d["model"].get("metadata") or {}).get("training") or {}).get("config")),
            pinned=p.resolve() == DEFAULT_REFERENCE.resolve(),
        )
    except (KeyError, TypeError, ValueError):
        raise UserError(f"reference {p} lacks model/clean/shifts records of a results.json") from None


def _load_correct_bits(p: Path, d: dict) -> dict[str, np.ndarray]:
    """The packed per-image correctness named by a pinned reference (empty for a results.json)."""
    from ..fileio import sha256_file

    spec = d.get("correct")
    if not spec:
        return {}
    path = p.parent / spec["file"]
    if not path.is_file() or sha256_file(path) != spec.get("sha256"):
        raise UserError(f"the per-image file {path.name} of reference {p.name} is missing or does not "
                        "match its sha256; reinstall robustmnist or re-pin the reference")
    with np.load(path, allow_pickle=False) as z:
        return {k.replace("__at__", "@"): z[k] for k in z.files}


def reference_from_result(result: Result, source: str = "",
                          predictions: dict[str, np.ndarray] | None = None) -> Reference:
    """A reference from a run; with its per-image predictions it is usable at any n."""
    def correct(sid: str) -> np.ndarray | None:
        if predictions is None or sid not in predictions:
            return None
        labels = predictions.get(f"{sid}:labels", predictions["labels"])
        return predictions[sid] == labels[:len(predictions[sid])]  # clean may hold more digits

    sets = {(r.name, r.severity): RefSet(
        error=1.0 - r.accuracy, n=r.n, sha256=r.sha256, chunks=tuple(r.chunks), version=r.version,
        params=r.params, correct=correct(f"{r.name}@{r.severity}")) for r in result.shifts}
    return Reference(
        name=result.model.name, sha256=result.model.sha256, clean_error=result.clean.error,
        errors={k: v.error for k, v in sets.items()}, source=source or result.model.path,
        set_sha256={k: v.sha256 for k, v in sets.items()}, sets=sets, seed=result.seed,
        clean_correct=correct("clean"), arch=result.model.arch, recipe=model_recipe(result.model),
    )


def training_recipe(config: dict | None) -> str:
    """A training config (train.loop's, as checkpoints and the pinned reference record it) in
    words: "6 epochs, adam onecycle lr 0.003, batch 128, seed 0"; "" without one."""
    if not isinstance(config, dict) or not config.get("epochs"):
        return ""
    e = config["epochs"]
    parts = [f"{e} epoch{'s' * (e != 1)}",
             " ".join(str(v) for v in (config.get("optimizer"), config.get("schedule")) if v)
             + (f" lr {config['lr']:g}" if config.get("lr") else "")]
    if config.get("batch_size"):
        parts.append(f"batch {config['batch_size']}")
    if config.get("augment"):
        aug = config["augment"]
        parts.append("augmented with " + (", ".join(aug) if isinstance(aug, list | tuple) else str(aug)))
    if config.get("seed") is not None:
        parts.append(f"seed {config['seed']}")
    return ", ".join(p for p in parts if p)


def model_recipe(model) -> str:
    """How a result's model was trained, in words, where its checkpoint recorded it (results.ModelInfo)."""
    training = (getattr(model, "metadata", None) or {}).get("training") or {}
    return training_recipe(training.get("config"))


def reference_info(ref: Reference, clean_n: int | None = None) -> dict:
    """What results and leaderboards record of the reference: enough to say what it is (mce_note)."""
    clean_error = ref.clean_error_at(clean_n) if clean_n else ref.clean_error
    return {"name": ref.name, "sha256": ref.sha256, "source": Path(ref.source).name, "arch": ref.arch,
            "recipe": ref.recipe, "clean_accuracy": round(1.0 - clean_error, 6), "pinned": ref.pinned}


def match_reference_set(r, seed: int, ref: Reference) -> tuple[bool, str]:
    """(usable, why) for one shift record against the reference: the recipe first (shift,
    version, params, severity, seed), then the bytes on the common prefix."""
    from ..shifts.fingerprint import compare_prefix

    rs = ref.sets.get((r.name, r.severity))
    if rs is None:
        return False, "not in the reference"
    if rs.version is not None and rs.version != r.version:
        return False, f"another version of the shift (v{r.version}; the reference has v{rs.version})"
    if rs.params is not None and r.params and rs.params != r.params:
        return False, "other severity parameters than the reference's"
    if ref.seed is not None and seed != ref.seed:
        return False, f"set seed {seed}; the reference used {ref.seed}"
    if r.chunks and rs.chunks:
        m = compare_prefix(list(r.chunks), r.n, list(rs.chunks), rs.n)
        if m.differs:
            return False, m.describe()
        note = "" if m.identical else m.describe()
    elif r.n == rs.n and rs.sha256:
        if r.sha256 != rs.sha256:
            return False, "bytes differ (sha256)"
        note = ""
    else:
        return False, "cannot check the images (no chunk fingerprints)"
    if rs.error_at(r.n) is None:
        return False, f"the reference has no per-image errors for n={r.n}"
    return True, note


# -- paired comparison ---------------------------------------------------------------------------


# -- leaderboard ---------------------------------------------------------------------------------

