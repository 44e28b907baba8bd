"""The diagnosis: from the measured grid, the convention the model was trained on, and which
findings apply. ``diagnose`` is the doctor's one call; ``load_for_diagnosis`` loads a model even
when its declared layout is wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..models.load import LoadedModel, load_model
from ..models.preprocess import LAYOUTS, OUTPUTS, Preprocess
from .dead_units import DeadUnits, measure_dead_units
from .findings import (
    CHANCE_BAR,
    HEALTHY_BAR,
    ONE_CLASS_SHARE,
    PERMUTED_BAR,
    SEVERITIES,
    Finding,
    chance_finding,
    dead_finding,
    input_findings,
    low_accuracy_finding,
    nan_finding,
    one_class_finding,
    output_findings,
    permuted_finding,
)
from .measure import (
    SAMPLE_SEED,
    ConventionScore,
    as_unit,
    clearly_better,
    detect_output_kind,
    distance,
    load_sample,
    range_value,
    score_grid,
    shifted_effect,
)

SCHEMA_VERSION = 1


@dataclass
class Diagnosis:
    model: dict[str, Any]
    n_images: int
    declared_source: str
    declared: ConventionScore
    best: ConventionScore
    output_kind: str  # detected from the outputs: logits | log-probs | probs | unknown
    findings: list[Finding]
    conventions: list[ConventionScore]
    dead_units: DeadUnits | None
    notes: list[str]
    seconds: float

    @property
    def healthy(self) -> bool:
        return not any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def fix_preprocess(self) -> str | None:
        return None if self.best.spec == self.declared.spec else self.best.spec

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "sample": {"dataset": "MNIST test", "n": self.n_images, "seed": SAMPLE_SEED,
                       "stratified": True},
            "healthy": self.healthy,
            "declared_source": self.declared_source,
            "declared": self.declared.to_dict(),
            "best": self.best.to_dict(),
            "fix_preprocess": self.fix_preprocess,
            "output_kind": self.output_kind,
            "findings": [f.to_dict() for f in self.findings],
            "dead_units": self.dead_units.to_dict() if self.dead_units else None,
            "notes": self.notes,
            "conventions": [c.to_dict() for c in self.conventions],
            "seconds": round(self.seconds, 3),
        }


def diagnose(
    model: LoadedModel,
    data_root: str | Path | None = None,
    declared: Preprocess | None = None,
    declared_source: str = "declared",
    sample: tuple[np.ndarray, np.ndarray] | None = None,
    check_dead_units: bool = True,
    ranges_only: bool = False,
) -> Diagnosis:
    """Score every convention on the fixed sample and explain what is wrong (if anything).

    ``declared`` defaults to ``model.preprocess``; it differs when the declared layout is one the
    model rejects (load_for_diagnosis loads it under the other). ``sample`` (uint8 images,
    labels) replaces the MNIST sample, for tests.
    """
    t0 = time.perf_counter()
    declared = declared or model.preprocess
    images, labels = sample if sample is not None else load_sample(data_root)
    labels = np.asarray(labels, dtype=np.int64)
    grid = score_grid(model, declared, images, labels, ranges_only)
    n = len(labels)
    notes = list(grid.notes)
    kind = detect_output_kind(list(grid.raws.values()))
    ok = [s for s in grid.scores if s.error is None]
    want = replace(declared, output=kind) if kind in OUTPUTS else declared
    decl = grid.declared
    # The output reading is read off the outputs, not searched: log(clamped logits) is a junk
    # transform whose accuracy or NLL can beat the real reading by accident.
    cands = [s for s in ok if s.preprocess.output == want.output] or ok
    ref = next((s for s in cands if s.spec == want.to_string()), decl)  # declared input, right reading
    top = max(cands, key=lambda s: (s.accuracy, -distance(s.preprocess, want)))
    # A consistently permuted class order makes every raw accuracy low; conventions are then
    # compared after relabelling, or the "best" would be whichever wrong one got lucky.
    remap = max(cands, key=lambda s: (s.remapped_accuracy, -distance(s.preprocess, want)))
    permuted = (remap.remapped_accuracy >= PERMUTED_BAR
                and remap.remapped_accuracy - top.accuracy >= 0.2
                and remap.mapping != list(range(10)))
    if permuted:
        pool, leader = cands, remap
    else:
        # Rescaling can also *mask* a defect: ×255 input dwarfs the biases, so a ReLU net with a
        # dominant output bias or biased-dead units scores well again, with absurd confidences.
        # The convention a model was trained on improves NLL along with accuracy, so candidates
        # that raise the NLL above the declared one are not offered as fixes.
        pool = [s for s in cands if s.nll <= ref.nll] or cands
        leader = max(pool, key=lambda s: (s.accuracy, -distance(s.preprocess, want)))
    # The best: among conventions statistically tied with the leader, the one closest to what was
    # declared (with the detected output kind), so a fix changes only what must change. Between
    # equally close ones, the lowest NLL: a ReLU net fed 255× its training scale can keep its
    # accuracy but not its confidences, so NLL singles out the convention it was trained on.
    tied = [s for s in pool if not clearly_better(leader, s, remapped=permuted)]
    best = min(tied, key=lambda s: (distance(s.preprocess, want), s.nll))
    if not permuted and top.accuracy < CHANCE_BAR:
        # Every convention is at chance: one scoring 15% against the declared 8% is noise in a
        # broken model, not a preprocessing fix. Keep the declared input convention.
        best = next((s for s in ok if s.spec == want.to_string()), best)
    # A ReLU network is nearly scale-invariant in its argmax, so feeding it 255× (or 1/255×) its
    # training scale can keep the accuracy while wrecking the confidences. Among conventions tied
    # on accuracy that only rescale the input, a much lower NLL identifies the trained scale.
    confidences_only = False
    if not permuted and best.accuracy >= CHANCE_BAR and distance(best.preprocess, want) == 0:
        rescaled = [s for s in tied if distance(s.preprocess, want) == 1
                    and range_value(s.preprocess) != range_value(want)
                    and s.nll < best.nll / 2 and best.nll - s.nll > 0.1]
        if rescaled:
            best, confidences_only = min(rescaled, key=lambda s: s.nll), True
    fix = f"--preprocess {best.spec}"
    findings: list[Finding] = []

    all_nan = all(s.non_finite == n for s in ok)
    if decl.error is None and decl.non_finite:
        findings.append(nan_finding(model, decl, n))
    if decl.error or replace(best.preprocess, output=declared.output).to_string() != declared.to_string():
        effect = shifted_effect(model, declared, replace(best.preprocess, output=declared.output), images,
                                labels) if confidences_only else None
        findings += input_findings(decl, best, fix, permuted, confidences_only, effect)
    findings += output_findings(declared, kind, fix)

    if permuted:
        findings.append(permuted_finding(best, declared))
    if not permuted and not all_nan and top.accuracy < CHANCE_BAR:
        findings.append(chance_finding(top, remap))
    if not all_nan and best.top_share >= ONE_CLASS_SHARE and best.top_class is not None:
        findings.append(one_class_finding(best))
    if not permuted and not all_nan and CHANCE_BAR <= best.accuracy < HEALTHY_BAR:
        findings.append(low_accuracy_finding(best))

    dead = None
    if check_dead_units and not all_nan:  # NaN activations would read as "never fired"
        dead, why = measure_dead_units(model, best.preprocess.apply_input(as_unit(images)))
        if why:
            notes.append(why)
        elif dead is not None and (found := dead_finding(dead)):
            findings.append(found)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    info = {"path": model.path, "sha256": model.sha256, "format": model.format, "arch": model.arch}
    return Diagnosis(info, n, declared_source, decl, best, kind, findings, grid.scores, dead, notes,
                     time.perf_counter() - t0)


def load_for_diagnosis(
    path: str | Path, arch: str | None = None, preprocess: str | None = None, trust_pickle: bool = False,
    **load_kwargs,
) -> tuple[LoadedModel, Preprocess]:
    """Load a model even when its declared layout is one it rejects (that is a finding, not an
    input error): returns the model under a layout it takes, and the convention as declared.
    ``load_kwargs`` go to ``load_model`` (model_code, model_kwargs)."""
    try:
        model = load_model(path, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle, **load_kwargs)
        return model, model.preprocess
    except UserError as first:
        for layout in LAYOUTS:
            retry = f"{preprocess},layout={layout}" if preprocess else f"layout={layout}"
            try:
                model = load_model(path, arch=arch, preprocess=retry, trust_pickle=trust_pickle, **load_kwargs)
            except UserError:
                continue
            other = next(lay for lay in LAYOUTS if lay != layout)
            return model, replace(model.preprocess, layout=other)
        raise first from None
