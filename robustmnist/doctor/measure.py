"""The doctor's measurements: a model's outputs on a fixed MNIST sample under every candidate
input convention, read three ways (logits, log-probs, probs), and the numbers taken from them
(accuracy, accuracy after relabelling, NLL, non-finite rows, the output kind, shifted accuracy).
Nothing here decides what is wrong; findings.py and diagnosis.py do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.datasets import load_mnist
from ..errors import UserError
from ..models.load import LoadedModel
from ..models.preprocess import LAYOUTS, MNIST_MEAN, MNIST_STD, Preprocess

SAMPLE_SIZE = 1000
SAMPLE_SEED = 8  # fixed forever: the sample must be the same images on every machine and run
CHUNK = 500  # images per forward pass: bounded memory for wide models, few Python round trips
NLL_CAP = 27.6  # −log(1e-12), the floor Preprocess.to_logits puts under probabilities

# The input ranges people actually train with. ``norm:0:255`` is x/255/255: pixels scaled
# twice (ToTensor already divides by 255 and the training code divided again).
RANGE_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"range": "0-1"},
    {"range": "0-255"},
    {"range": "norm", "mean": MNIST_MEAN, "std": MNIST_STD},
    {"range": "-1-1"},
    {"range": "norm", "mean": 0.0, "std": 255.0},
)


@dataclass
class ConventionScore:
    """One (input, output) convention scored on the sample."""

    preprocess: Preprocess
    accuracy: float = 0.0
    remapped_accuracy: float = 0.0  # after the best one-to-one relabelling of outputs
    mapping: list[int] = field(default_factory=list)  # mapping[output index] = digit it stands for
    nll: float = float("inf")  # mean −log p(true digit) (non-finite rows count NLL_CAP)
    non_finite: int = 0  # images whose output row holds NaN or inf
    top_class: int | None = None
    top_share: float = 0.0  # fraction of images predicted as top_class
    error: str | None = None  # the model refused this input (e.g. wrong layout)
    correct: np.ndarray | None = field(default=None, repr=False)  # per-image, for paired tests
    nll_each: np.ndarray | None = field(default=None, repr=False)  # per-image −log p(true digit), ditto
    remapped_correct: np.ndarray | None = field(default=None, repr=False)

    @property
    def spec(self) -> str:
        return self.preprocess.to_string()

    def to_dict(self) -> dict[str, Any]:
        return {
            "preprocess": self.spec, "accuracy": round(self.accuracy, 4),
            "remapped_accuracy": round(self.remapped_accuracy, 4), "nll": round(min(self.nll, NLL_CAP), 4),
            "non_finite": self.non_finite,
            "top_class": self.top_class, "top_share": round(self.top_share, 4), "error": self.error,
        }


# -- the sample --------------------------------------------------------------------------------

def sample_indices(labels: np.ndarray, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """A fixed, class-balanced choice of n test images (sorted indices).

    Balanced so that a one-class model scores ~10% exactly and the confusion matrix has the
    same weight in every row, which the permutation check relies on.
    """
    labels = np.asarray(labels)
    perm = np.random.default_rng(seed).permutation(len(labels))
    per_class = n // 10
    chosen = np.concatenate([perm[labels[perm] == k][:per_class] for k in range(10)])
    if len(chosen) < min(n, len(labels)):  # a small data set: top up in permutation order
        rest = perm[~np.isin(perm, chosen)]
        chosen = np.concatenate([chosen, rest[: min(n, len(labels)) - len(chosen)]])
    return np.sort(chosen)


def load_sample(data_root: str | Path | None = None, n: int = SAMPLE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    test = load_mnist("test", data_root)
    idx = sample_indices(test.labels, n)
    return test.images[idx], test.labels[idx]


# -- scoring -----------------------------------------------------------------------------------

class _Refused(Exception):
    """The model raised on, or returned the wrong shape for, an input convention."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0).unsqueeze(1)


def _raw_outputs(model: LoadedModel, spec: Preprocess, x01: torch.Tensor) -> np.ndarray:
    """The module's raw N×10 output under ``spec``'s input convention; NaN/inf are kept."""
    parts = []
    with torch.inference_mode():
        for s in range(0, len(x01), CHUNK):
            xb = spec.apply_input(x01[s : s + CHUNK]).to(model.device)
            try:
                out = model.module(xb)
            except Exception as exc:  # noqa: BLE001 - a model may raise anything on a wrong input
                raise _Refused(first_line(exc)) from None
            if isinstance(out, tuple | list):
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != 10:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise _Refused(f"output {shape}, expected N×10")
            parts.append(out.detach().float().cpu())
    return torch.cat(parts).numpy()


def _predictions(raw: np.ndarray, output: str, labels: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Predicted class the way the scorer computes it (−1 for non-finite rows), the NLL and the
    per-image NLL."""
    logits = Preprocess(output=output).to_logits(torch.from_numpy(raw))
    finite = np.isfinite(raw).all(axis=1)
    pred = np.where(finite, logits.nan_to_num(nan=-np.inf).argmax(dim=1).numpy(), -1).astype(np.int64)
    logp = torch.log_softmax(logits, dim=1)[torch.arange(len(labels)), torch.from_numpy(labels)].numpy()
    # Not capped for finite rows: an overconfident error at 255× the trained scale costs hundreds
    # of nats, and that size is what tells a masked defect from a real convention fix.
    per_image = np.where(finite, -np.nan_to_num(logp, nan=-NLL_CAP, neginf=-NLL_CAP), NLL_CAP)
    return pred, float(per_image.mean(dtype=np.float64)) if len(labels) else float("inf"), per_image


def _score(spec: Preprocess, raw: np.ndarray, labels: np.ndarray) -> ConventionScore:
    from scipy.optimize import linear_sum_assignment

    pred, nll, nll_each = _predictions(raw, spec.output, labels)
    n = len(labels)
    correct = pred == labels
    valid = pred >= 0
    confusion = np.bincount(labels[valid] * 10 + pred[valid], minlength=100).reshape(10, 10)
    # Hungarian assignment: the one-to-one output->digit relabelling with the most hits.
    rows, cols = linear_sum_assignment(-confusion)
    mapping = [0] * 10
    for digit, out in zip(rows, cols, strict=True):
        mapping[int(out)] = int(digit)
    remapped_correct = valid & (np.asarray(mapping)[np.where(valid, pred, 0)] == labels)
    counts = np.bincount(pred[valid], minlength=10)
    top = int(counts.argmax()) if valid.any() else None
    return ConventionScore(
        preprocess=spec, accuracy=float(correct.mean()) if n else 0.0,
        remapped_accuracy=float(remapped_correct.mean()) if n else 0.0, mapping=mapping, nll=nll,
        non_finite=int((~valid).sum()), top_class=top,
        top_share=float(counts.max() / n) if n and valid.any() else 0.0, correct=correct, nll_each=nll_each,
        remapped_correct=remapped_correct,
    )


def clearly_better(a: ConventionScore, b: ConventionScore, remapped: bool = False) -> bool:
    """Is ``a`` more accurate than ``b`` (after relabelling, if ``remapped``) beyond sampling
    noise on the same images?

    McNemar's test on the discordant pairs (p < 0.001), plus at least 2 points of accuracy, so
    a model that is equally good under two conventions keeps the one it declared.
    """
    ca, cb = (a.remapped_correct, b.remapped_correct) if remapped else (a.correct, b.correct)
    if ca is None or cb is None:  # a convention the model refused
        return cb is None and ca is not None
    wins = int((ca & ~cb).sum())
    losses = int((~ca & cb).sum())
    if wins - losses < 0.02 * len(ca):
        return False
    return (wins - losses) ** 2 / (wins + losses) > 10.83


def input_candidates(declared: Preprocess, layouts: list[str], ranges_only: bool = False) -> list[Preprocess]:
    """Every input convention to try, the declared one first (output kind left as declared).

    ``ranges_only`` keeps the declared polarity and transposition (the guard's quick grid for a
    model that already works as declared: only its scale can still be off)."""
    found: dict[str, Preprocess] = {}
    base = replace(declared, output="logits")
    found[base.to_string()] = base
    polarities = (declared.polarity,) if ranges_only else ("normal", "inverted")
    transposes = (declared.transpose,) if ranges_only else (False, True)
    for layout in layouts:
        for rng in RANGE_CANDIDATES:
            for polarity in polarities:
                for transpose in transposes:
                    spec = replace(Preprocess(**rng), polarity=polarity, transpose=transpose, layout=layout)
                    found.setdefault(spec.to_string(), spec)
    return list(found.values())


def range_value(p: Preprocess) -> str:
    """The range part of a spec as written after ``range=`` (mean/std only matter for norm)."""
    return p.to_string().split(",")[0].partition("=")[2]


def distance(a: Preprocess, b: Preprocess) -> int:
    """How many of the user-visible choices differ."""
    return (range_value(a) != range_value(b)) + sum(
        getattr(a, k) != getattr(b, k) for k in ("polarity", "layout", "transpose", "output"))


def detect_output_kind(raws: list[np.ndarray]) -> str:
    """logits | log-probs | probs from the outputs themselves (unknown when all are NaN)."""
    rows = [r[np.isfinite(r).all(axis=1)] for r in raws]
    rows = np.concatenate(rows).astype(np.float64) if rows else np.empty((0, 10))
    if len(rows) == 0:
        return "unknown"
    # 99% rather than all: a saturated float32 softmax can miss 1 by more than the tolerance.
    probs_like = (rows >= -1e-6).all(axis=1) & (np.abs(rows.sum(axis=1) - 1) < 1e-3)
    if probs_like.mean() >= 0.99:
        return "probs"
    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    if ((rows <= 1e-6).all(axis=1) & (np.abs(lse) < 1e-3)).mean() >= 0.99:
        return "log-probs"
    return "logits"


def _accepted_layouts(model: LoadedModel, x01: torch.Tensor, declared: Preprocess) -> tuple[list[str], list[str]]:
    """Layouts the model takes, and notes. If both give the same outputs (an MLP that flattens
    first), score one: the other would only double the time and tie every comparison."""
    probe = x01[:16]
    outs: dict[str, np.ndarray] = {}
    for layout in LAYOUTS:
        try:
            outs[layout] = _raw_outputs(model, replace(declared, layout=layout), probe)
        except _Refused:
            continue
    notes = []
    if len(outs) == 2:
        a, b = outs["1x28x28"], outs["784"]
        if np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
            keep = declared.layout if declared.layout in outs else "1x28x28"
            notes.append(f"the model accepts both 1x28x28 and 784 input with identical outputs; "
                         f"scored layout={keep} only")
            return [keep], notes
    return [lay for lay in LAYOUTS if lay in outs], notes


@dataclass
class ConventionGrid:
    scores: list[ConventionScore]  # every (input convention × output kind) that ran
    declared: ConventionScore
    raws: dict[str, np.ndarray]  # input spec string -> raw outputs
    layouts: list[str]
    notes: list[str]


def score_grid(model: LoadedModel, declared: Preprocess, images: np.ndarray, labels: np.ndarray,
                ranges_only: bool = False) -> ConventionGrid:
    x01 = as_unit(images)
    layouts, notes = _accepted_layouts(model, x01, declared)
    if not layouts:
        raise UserError(f"{model.path}: the model rejects both 1x28x28 and 784 input under every convention")
    raws: dict[str, np.ndarray] = {}
    scores: list[ConventionScore] = []
    declared_score = None
    for spec in input_candidates(declared, layouts, ranges_only):
        try:
            raw = _raw_outputs(model, spec, x01)
        except _Refused as exc:
            if spec.to_string() == replace(declared, output="logits").to_string():
                declared_score = ConventionScore(declared, error=str(exc))
            continue
        raws[spec.to_string()] = raw
        as_logits = _score(spec, raw, labels)
        # The scorer reads log-probs exactly as logits (softmax(log p) = p): same numbers.
        scores += [as_logits, replace(as_logits, preprocess=replace(spec, output="log-probs")),
                   _score(replace(spec, output="probs"), raw, labels)]
    if declared_score is None:
        declared_score = next(s for s in scores if s.spec == declared.to_string())
    return ConventionGrid(scores, declared_score, raws, layouts, notes)


# -- effect on shifted sets --------------------------------------------------------------------

# Where a mean/std mismatch shows most: shifts that move the background or the contrast, which
# a ReLU net's argmax no longer survives once its input is off-centre.
EFFECT_SHIFTS = (("contrast", 3), ("fog", 3))


def shifted_effect(model: LoadedModel, declared: Preprocess, fixed: Preprocess, images: np.ndarray,
                   labels: np.ndarray) -> list[tuple[str, int, float, float]]:
    """(shift, severity, accuracy as declared, accuracy with the fix) on the doctor's sample,
    for the default suite's levels of EFFECT_SHIFTS: what a clean-only look cannot show."""
    from ..data.datasets import to_uint8
    from ..shifts.registry import get_shift
    from ..shifts.sets import chunk_generator
    from ..shifts.suite import load_suite

    suite = load_suite("default")
    out = []
    for name, sev in EFFECT_SHIFTS:
        if name not in suite.shift_params:
            continue
        shift = get_shift(name)
        params = suite.params(name, sev)  # an estimate on the doctor's sample: one chunk's draws
        x = shift.apply(as_unit(images), chunk_generator(shift, sev, params, 0, 0), **params)
        shifted = as_unit(to_uint8(x))  # through uint8, as every scored set is
        accs = []
        for spec in (declared, fixed):
            try:
                raw = _raw_outputs(model, spec, shifted)
            except _Refused:
                break
            accs.append(float((_predictions(raw, spec.output, labels)[0] == labels).mean()))
        if len(accs) == 2:
            out.append((name, sev, accs[0], accs[1]))
    return out
