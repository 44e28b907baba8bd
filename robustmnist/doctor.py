"""Preflight diagnosis: name the reason a digit classifier "gets 0.49" or "sits at 10%".

Most reports of terrible MNIST accuracy are not about the model's capacity but about a
convention mismatch between training and evaluation: pixels in 0-255 versus 0-1 (or divided
by 255 twice), ``Normalize((0.1307,), (0.3081,))`` applied in training but not at test time,
inverted polarity, transposed images (EMNIST stores its images transposed), a flattened
versus 1×28×28 layout, a softmax inside the model, class indices in the wrong order. Each
leaves a fingerprint that a few forward passes can read:

1. Score a fixed, class-balanced 1,000-image MNIST test sample under every candidate input
   convention (range × polarity × transpose × accepted layouts). One forward pass per input
   convention; the output kinds (logits, log-probs, probs) are transforms of the same output,
   so they cost nothing extra.
2. Read the raw outputs: rows summing to 1 mean a softmax in the model, rows whose exp sums
   to 1 a log_softmax; NaN/inf rows mean broken weights or an overflowing input range.
3. Compare the declared convention with the best one. A difference only counts when it is
   clearly more than sampling noise (paired McNemar test on the same images), so a healthy
   model is never told to switch between two equivalent conventions.
4. Look for what no convention fixes: chance level everywhere, one predicted class, a class
   order permuted consistently (Hungarian assignment on the confusion matrix), dead ReLUs.

``diagnose`` returns a ``Diagnosis`` dataclass (JSON via ``to_dict``); convention.py's guard is
the cheap version eval, bench and the API run before a long evaluation.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.datasets import load_mnist
from .errors import UserError
from .models.load import LoadedModel, OnnxModule, load_model
from .models.preprocess import LAYOUTS, MNIST_MEAN, MNIST_STD, OUTPUTS, Preprocess

SCHEMA_VERSION = 1
SAMPLE_SIZE = 1000
SAMPLE_SEED = 8  # fixed forever: the sample must be the same images on every machine and run
CHUNK = 500  # images per forward pass: bounded memory for wide models, few Python round trips

CHANCE_BAR = 0.20  # 10 classes: 10% is chance; an untrained net wanders between ~5% and ~20%
HEALTHY_BAR = 0.90  # below logistic regression on MNIST (~92%): any working model clears it
PERMUTED_BAR = 0.80  # accuracy after remapping classes that counts as "it learned, but relabelled"
ONE_CLASS_SHARE = 0.50  # one class predicted for half the images (its true share is ~10%)
# A hidden layer with half its ReLUs never firing has lost half its width. Healthy trained
# nets do have some: a LeNet-5 at 98% has ~20% of its fc units silent on MNIST.
DEAD_LAYER_BAR = 0.50
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

SEVERITIES = ("error", "warning", "info")  # error/warning make the model "unhealthy" (exit 1)


# -- results -----------------------------------------------------------------------------------

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


@dataclass
class Finding:
    code: str  # stable identifier, e.g. "input-range", "permuted-labels"
    severity: str  # error | warning | info
    title: str  # one line
    detail: str  # plain-language explanation: what it means, why it happens
    fix: str | None = None  # what to do; includes the exact --preprocess value where one exists
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title,
                "detail": self.detail, "fix": self.fix, "data": self.data}


@dataclass
class LayerUnits:
    name: str  # module path, e.g. "2" in an nn.Sequential, plus what it follows
    units: int
    dead: int

    @property
    def fraction(self) -> float:
        return self.dead / self.units if self.units else 0.0


@dataclass
class DeadUnits:
    method: str  # how activity was measured (ReLU module outputs, or Linear pre-activations)
    layers: list[LayerUnits]

    @property
    def total(self) -> int:
        return sum(layer.units for layer in self.layers)

    @property
    def dead(self) -> int:
        return sum(layer.dead for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "dead": self.dead, "units": self.total,
                "layers": [{"name": x.name, "units": x.units, "dead": x.dead} for x in self.layers]}


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_unit(images: np.ndarray) -> torch.Tensor:
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
                raise _Refused(_first_line(exc)) from None
            if isinstance(out, tuple | list):
                out = out[0]
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != 10:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise _Refused(f"output {shape}, expected N×10")
            parts.append(out.detach().float().cpu())
    return torch.cat(parts).numpy()


def _predictions(raw: np.ndarray, output: str, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Predicted class the way the scorer computes it (−1 for non-finite rows), and the NLL."""
    logits = Preprocess(output=output).to_logits(torch.from_numpy(raw))
    finite = np.isfinite(raw).all(axis=1)
    pred = np.where(finite, logits.nan_to_num(nan=-np.inf).argmax(dim=1).numpy(), -1).astype(np.int64)
    logp = torch.log_softmax(logits, dim=1)[torch.arange(len(labels)), torch.from_numpy(labels)].numpy()
    # Not capped for finite rows: an overconfident error at 255× the trained scale costs hundreds
    # of nats, and that size is what tells a masked defect from a real convention fix.
    per_image = np.where(finite, -np.nan_to_num(logp, nan=-NLL_CAP, neginf=-NLL_CAP), NLL_CAP)
    return pred, float(per_image.mean(dtype=np.float64)) if len(labels) else float("inf")


def _score(spec: Preprocess, raw: np.ndarray, labels: np.ndarray) -> ConventionScore:
    from scipy.optimize import linear_sum_assignment

    pred, nll = _predictions(raw, spec.output, labels)
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
        top_share=float(counts.max() / n) if n and valid.any() else 0.0, correct=correct,
        remapped_correct=remapped_correct,
    )


def _clearly_better(a: ConventionScore, b: ConventionScore, remapped: bool = False) -> bool:
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


def _range_value(p: Preprocess) -> str:
    """The range part of a spec as written after ``range=`` (mean/std only matter for norm)."""
    return p.to_string().split(",")[0].partition("=")[2]


def _distance(a: Preprocess, b: Preprocess) -> int:
    """How many of the user-visible choices differ."""
    return (_range_value(a) != _range_value(b)) + sum(
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
class _Grid:
    scores: list[ConventionScore]  # every (input convention × output kind) that ran
    declared: ConventionScore
    raws: dict[str, np.ndarray]  # input spec string -> raw outputs
    layouts: list[str]
    notes: list[str]


def _score_grid(model: LoadedModel, declared: Preprocess, images: np.ndarray, labels: np.ndarray,
                ranges_only: bool = False) -> _Grid:
    x01 = _as_unit(images)
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
    return _Grid(scores, declared_score, raws, layouts, notes)


# -- dead units --------------------------------------------------------------------------------

def _layer_label(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"{name} (Linear {module.in_features}->{module.out_features})"
    if isinstance(module, nn.Conv2d):
        return f"{name} (Conv2d {module.in_channels}->{module.out_channels})"
    return name


def _uses_functional_relu(module: nn.Module) -> bool:
    for sub in module.modules():
        try:
            src = inspect.getsource(type(sub).forward)
        except (OSError, TypeError):
            continue
        if "relu" in src and type(sub).__module__.split(".")[0] != "torch":
            return True
    return False


def measure_dead_units(model: LoadedModel, x: torch.Tensor) -> tuple[DeadUnits | None, str | None]:
    """Which ReLU units never fire on the sample; (None, why) where it cannot be measured.

    A unit is dead when its output is 0 for every image (for conv layers: a whole channel).
    Dead units receive no gradient, so they never recover: the network trains at a fraction of
    its width. Measured with forward hooks, which TorchScript and ONNX modules do not offer.
    """
    module = model.module
    if isinstance(module, torch.jit.ScriptModule):
        return None, "dead-unit check skipped: TorchScript modules do not support forward hooks"
    if isinstance(module, OnnxModule):
        return None, "dead-unit check skipped: ONNX models run in onnxruntime, whose activations are not visible"
    if not isinstance(module, nn.Module):
        return None, "dead-unit check skipped: the model is not a torch nn.Module"

    relus = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.ReLU)]
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    active: dict[str, torch.Tensor] = {}  # label -> per-unit "fired at least once"
    order: list[str] = []
    last_layer = [""]
    handles = []

    def record(label: str, out: torch.Tensor) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() not in (2, 4):
            return
        fired = (out > 0).flatten(2).any(dim=2).any(dim=0) if out.dim() == 4 else (out > 0).any(dim=0)
        if label in active and active[label].shape == fired.shape:
            active[label] |= fired.cpu()
        else:
            active[label] = fired.cpu()
            order.append(label)

    if relus:
        method = "outputs of nn.ReLU modules (conv layers: per channel)"
        calls: dict[str, int] = {}

        def relu_hook(name):
            def hook(_mod, _inp, out):
                k = calls.get(name, 0)  # one ReLU module may be reused after several layers
                calls[name] = k + 1
                record(f"relu {name}{f'#{k}' if k else ''} after {last_layer[0] or 'input'}", out)
            return hook

        def layer_hook(label):
            def hook(_mod, _inp, _out):
                last_layer[0] = label
            return hook

        handles += [m.register_forward_hook(relu_hook(n)) for n, m in relus]
        handles += [m.register_forward_hook(layer_hook(_layer_label(n, m))) for n, m in layers]
    elif layers and _uses_functional_relu(module):
        # No ReLU modules but F.relu in forward: a hidden Linear unit whose pre-activation is
        # never positive is dead after the relu. The last layer (the logits) is not hidden.
        method = "pre-activations of hidden Linear layers (the model applies relu functionally)"
        linears = [(n, m) for n, m in layers if isinstance(m, nn.Linear)]
        handles += [m.register_forward_hook(lambda _m, _i, out, lbl=_layer_label(n, m): record(lbl, out))
                    for n, m in linears[:-1]]
    else:
        return None, "dead-unit check skipped: the model has no ReLU units"
    try:
        with torch.inference_mode():
            model.module(x.to(model.device))
    except Exception as exc:  # noqa: BLE001
        return None, f"dead-unit check failed: {_first_line(exc)}"
    finally:
        for h in handles:
            h.remove()
    result = [LayerUnits(lbl, int(active[lbl].numel()), int((~active[lbl]).sum())) for lbl in order]
    return DeadUnits(method, result), None


# -- effect on shifted sets --------------------------------------------------------------------

# Where a mean/std mismatch shows most: shifts that move the background or the contrast, which
# a ReLU net's argmax no longer survives once its input is off-centre.
EFFECT_SHIFTS = (("contrast", 3), ("fog", 3))


def shifted_effect(model: LoadedModel, declared: Preprocess, fixed: Preprocess, images: np.ndarray,
                   labels: np.ndarray) -> list[tuple[str, int, float, float]]:
    """(shift, severity, accuracy as declared, accuracy with the fix) on the doctor's sample,
    for the default suite's levels of EFFECT_SHIFTS: what a clean-only look cannot show."""
    from .data.datasets import to_uint8
    from .shifts.registry import get_shift
    from .shifts.sets import chunk_generator
    from .shifts.suite import load_suite

    suite = load_suite("default")
    out = []
    for name, sev in EFFECT_SHIFTS:
        if name not in suite.shift_params:
            continue
        shift = get_shift(name)
        params = suite.params(name, sev)  # an estimate on the doctor's sample: one chunk's draws
        x = shift.apply(_as_unit(images), chunk_generator(shift, sev, params, 0, 0), **params)
        shifted = _as_unit(to_uint8(x))  # through uint8, as every scored set is
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


# -- findings ----------------------------------------------------------------------------------

_RANGE_WORDS = {
    "0-1": "pixels scaled to 0–1 (ToTensor)",
    "0-255": "raw 0–255 pixel values",
    "-1-1": "pixels scaled to [-1, 1] (Normalize((0.5,), (0.5,)))",
}


def _range_text(p: Preprocess) -> str:
    if p.range == "norm":
        if (p.mean, p.std) == (0.0, 255.0):
            return "pixels divided by 255 twice (values 0–0.004)"
        if (p.mean, p.std) == (MNIST_MEAN, MNIST_STD):
            return f"MNIST-normalised pixels (Normalize(({MNIST_MEAN},), ({MNIST_STD},)))"
        return f"pixels normalised with mean {p.mean:g}, std {p.std:g}"
    return _RANGE_WORDS[p.range]


def _range_cause(declared: Preprocess, wanted: Preprocess) -> str:
    w, d = wanted.range, declared.range
    if w == "0-255":
        return ("It was trained on the uint8 pixels as floats (e.g. torch.from_numpy(x).float() without "
                "ToTensor, or ToTensor followed by *255), so fed 0–1 input it sees a nearly black image.")
    if w == "norm" and (wanted.mean, wanted.std) == (0.0, 255.0):
        return ("Its training pipeline divided by 255 twice (ToTensor already scales to 0–1; an extra "
                "/255 squeezes every digit towards zero), so properly scaled input looks 255× too bright.")
    if w == "norm":
        return ("It was trained with transforms.Normalize, so the background it learned is about −0.42, "
                "not 0; without the same normalisation every pixel is shifted and rescaled.")
    if w == "-1-1":
        return "It was trained with Normalize((0.5,), (0.5,)), which maps pixels to [−1, 1]."
    if d == "0-255":
        return "Fed 0–255 values, its activations are 255× too large and one class wins almost everywhere."
    return "The input it was trained on and the input it is given here are on different scales."


def _masking_caveat(declared: ConventionScore, best: ConventionScore) -> str:
    # A larger input scale dwarfs biases, so it also "repairs" a ReLU net whose biases went
    # wrong (a dominant output bias, units biased dead). A real range mistake, once fixed,
    # usually gives back a working model; a fix that stops short of that is less certain.
    if best.accuracy >= HEALTHY_BAR:
        return ""
    return (f" The fix reaches only {best.accuracy:.1%}, though: if the model was in fact trained with "
            f"range={_range_value(declared.preprocess)}, a larger input may just be masking damaged "
            "biases (check the training curve).")


def _input_findings(declared: ConventionScore, best: ConventionScore, fix: str, remapped: bool,
                    confidences_only: bool, effect: list | None = None) -> list[Finding]:
    d, b = declared.preprocess, best.preprocess
    severity = "warning" if confidences_only else "error"
    if confidences_only:
        moved = "; ".join(f"{nm} s{sv}: {a:.1%} as declared, {f:.1%} with the fix" for nm, sv, a, f in effect or [])
        gain = (f"Clean accuracy is about the same ({declared.accuracy:.1%} as declared, {best.accuracy:.1%} with "
                "the fix), but the confidences are not: "
                f"NLL {declared.nll:.2f} as declared, {best.nll:.2f} with the fix"
                + (f", and shifted digits are not either ({moved})" if moved else "")
                + ". So shifted accuracy, mCE, calibration (ECE, NLL, Brier) and OOD scores would all be "
                "wrong under the declared convention.")
    elif remapped:
        gain = (f"Accuracy after relabelling the classes: {declared.remapped_accuracy:.1%} as declared, "
                f"{best.remapped_accuracy:.1%} with the fix.")
    else:
        gain = f"Accuracy on the sample: {declared.accuracy:.1%} as declared, {best.accuracy:.1%} with the fix."
    symptom = ""
    if declared.top_share >= ONE_CLASS_SHARE and declared.top_class is not None:
        symptom = (f" Under the declared convention it predicts '{declared.top_class}' for "
                   f"{declared.top_share:.0%} of the images.")
    found = []
    if declared.error is not None:
        found.append(Finding(
            "layout", "error", f"the model rejects layout={d.layout} input",
            f"Fed {d.layout} tensors it fails ({declared.error}); it takes layout={b.layout} "
            + ("(flat 784-vectors: an nn.Linear(784, …) first layer with no nn.Flatten)."
               if b.layout == "784" else "(N×1×28×28 images, e.g. a convolutional first layer)."),
            fix, {"declared": d.layout, "expected": b.layout}))
    elif d.layout != b.layout:
        found.append(Finding(
            "layout", "error", f"the model expects layout={b.layout}, not {d.layout}",
            f"It accepts both layouts but only computes the right thing on {b.layout} input. {gain}",
            fix, {"declared": d.layout, "expected": b.layout}))
    if _range_value(d) != _range_value(b):
        found.append(Finding(
            "input-range", severity,
            f"the model expects {_range_text(b)}, not {_range_text(d)}",
            f"{_range_cause(d, b)} {gain}{symptom}{_masking_caveat(declared, best)}",
            fix, {"declared": _range_value(d), "expected": _range_value(b)}))
    if d.polarity != b.polarity:
        wanted = "black digits on a white background" if b.polarity == "inverted" else "white digits on black"
        found.append(Finding(
            "polarity", "error", f"the model expects {wanted} (polarity={b.polarity})",
            ("It was trained on inverted images (dark ink on paper: scans, PIL drawings, or 255 − x "
             "somewhere in the pipeline), while MNIST is white on black. "
             if b.polarity == "inverted" else
             "It was trained on MNIST's white-on-black digits but is being fed inverted ones. ")
            + gain + symptom,
            fix, {"declared": d.polarity, "expected": b.polarity}))
    if d.transpose != b.transpose:
        found.append(Finding(
            "transpose", "error", "the model expects transposed images (rows and columns swapped)"
            if b.transpose else "the model expects images as stored, not transposed",
            "Rows and columns are swapped between training and evaluation: typical of EMNIST (stored "
            "transposed), of reshaping with order='F' or of MATLAB/CSV exports. Digits then look "
            "mirrored and rotated, and most are misread. " + gain + symptom,
            fix, {"declared": d.transpose, "expected": b.transpose}))
    return found


def _output_findings(declared: Preprocess, kind: str, fix: str | None) -> list[Finding]:
    if kind == "probs":
        training = ("If it was trained with nn.CrossEntropyLoss on these outputs, that is a bug: "
                    "CrossEntropyLoss applies log_softmax itself, so softmax runs twice, the gradients "
                    "shrink and training stalls short of what the network can do. Train on the logits "
                    "(drop the final softmax) and apply softmax only at inference.")
        if declared.output == "probs":
            return [Finding("softmax-output", "info", "the model ends in softmax (declared output=probs)",
                            "Fine for evaluation. " + training, None, {"declared": "probs", "detected": kind})]
        return [Finding(
            "softmax-output", "warning", "the model outputs probabilities, not " + declared.output,
            "Every output row is non-negative and sums to 1: the model ends in softmax. Accuracy is "
            "unaffected, but read as " + declared.output + " they give wrong confidences, so ECE, NLL, "
            "Brier and the OOD scores would be wrong. " + training,
            fix, {"declared": declared.output, "detected": kind})]
    if kind == "log-probs":
        note = ("With NLLLoss that is the intended pairing; with CrossEntropyLoss it is redundant but "
                "harmless (log_softmax of log-probabilities changes nothing). Max-logit and energy OOD "
                "scores carry no more information than max-softmax for such a model.")
        if declared.output == "probs":
            return [Finding(
                "log-softmax-output", "error", "the model outputs log-probabilities, not probabilities",
                "Every output row is ≤ 0 and its exp sums to 1: the model ends in log_softmax. Read as "
                "probabilities, the negative values are clipped and the predictions become meaningless. "
                + note, fix, {"declared": declared.output, "detected": kind})]
        # logits and log-probs are scored identically (softmax(log p) = p): nothing is wrong.
        return [Finding(
            "log-softmax-output", "info", "the model ends in log_softmax (outputs are log-probabilities)",
            "Every output row is ≤ 0 and its exp sums to 1. Scoring is the same as for logits. " + note,
            fix, {"declared": declared.output, "detected": kind})]
    if kind == "logits" and declared.output in ("probs", "log-probs"):
        return [Finding(
            "output-kind", "error" if declared.output == "probs" else "warning",
            f"the model outputs logits, not {declared.output}",
            "Its outputs neither sum to 1 nor have exp summing to 1, so they are unnormalised scores. "
            + ("Read as probabilities, negative scores are clipped and predictions tie."
               if declared.output == "probs" else "Declaring them log-probabilities mislabels the result."),
            fix, {"declared": declared.output, "detected": kind})]
    return []


_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _permutation_cause(mapping: list[int]) -> str:
    for shift in range(1, 10):
        if all(mapping[o] == (o + shift) % 10 for o in range(10)):
            return (f" Every output is off by {shift} ({'1-based labels, ' if shift in (1, 9) else ''}"
                    "a label shifted in the data loader).")
    if mapping == [9 - o for o in range(10)]:
        return " The order is exactly reversed."
    if mapping == [_WORDS.index(w) for w in sorted(_WORDS)]:
        return (" It is the alphabetical order of the English names: class folders named zero…nine, "
                "which torchvision's ImageFolder sorts as strings.")
    return ""


def _nan_finding(model: LoadedModel, declared: ConventionScore, n: int) -> Finding:
    bad_params = []
    if isinstance(model.module, nn.Module):
        bad_params = [name for name, p in model.module.named_parameters() if not torch.isfinite(p).all()]
        bad_params += [name for name, b in model.module.named_buffers()
                       if b.is_floating_point() and not torch.isfinite(b).all()]
    if bad_params:
        cause = (f"These weights hold NaN or inf: {', '.join(bad_params[:6])}"
                 f"{' …' if len(bad_params) > 6 else ''}. Training diverged (learning rate too high, "
                 "log(0) in a hand-written loss, or a division by a zero std) and the model was saved "
                 "after it did.")
        fix = "retrain with a lower learning rate or gradient clipping, and save a checkpoint from before the NaN"
    else:
        cause = ("The weights are finite, so the overflow happens in the forward pass: an input range "
                 "the model was not trained on (e.g. 0–255 into a model with exp or log), or a "
                 "numerically unsafe operation such as log(softmax(x)) instead of log_softmax.")
        fix = "check the input range (see the conventions above) and use log_softmax instead of log(softmax)"
    return Finding("non-finite-outputs", "error",
                   f"the model outputs NaN or inf for {declared.non_finite} of {n} images",
                   cause, fix, {"images": declared.non_finite, "parameters": bad_params})


def _dead_finding(dead: DeadUnits) -> Finding | None:
    worst = max(dead.layers, key=lambda x: x.fraction, default=None)
    if worst is None or worst.fraction < DEAD_LAYER_BAR:
        return None
    per_layer = "; ".join(f"{x.name}: {x.dead}/{x.units}" for x in dead.layers if x.dead)
    return Finding(
        "dead-relus", "warning",
        f"{dead.dead} of {dead.total} ReLU units never fire on the sample ({dead.dead / dead.total:.0%})",
        f"Dead units ({per_layer}) output 0 for every image, get no gradient and never recover, so the "
        "network trains at a fraction of its width. Usual causes: a learning rate too high (one large "
        "update drives the biases negative), a badly scaled input (0–255 pixels into a network "
        "initialised for 0–1), or an initialisation with negative biases.",
        "lower the learning rate or use a warm-up, normalise the input, use Kaiming (He) "
        "initialisation, or use LeakyReLU; then retrain",
        {"layers": [{"name": x.name, "units": x.units, "dead": x.dead} for x in dead.layers]})


# -- the diagnosis -----------------------------------------------------------------------------

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
    grid = _score_grid(model, declared, images, labels, ranges_only)
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
    top = max(cands, key=lambda s: (s.accuracy, -_distance(s.preprocess, want)))
    # A consistently permuted class order makes every raw accuracy low; conventions are then
    # compared after relabelling, or the "best" would be whichever wrong one got lucky.
    remap = max(cands, key=lambda s: (s.remapped_accuracy, -_distance(s.preprocess, want)))
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
        leader = max(pool, key=lambda s: (s.accuracy, -_distance(s.preprocess, want)))
    # The best: among conventions statistically tied with the leader, the one closest to what was
    # declared (with the detected output kind), so a fix changes only what must change. Between
    # equally close ones, the lowest NLL: a ReLU net fed 255× its training scale can keep its
    # accuracy but not its confidences, so NLL singles out the convention it was trained on.
    tied = [s for s in pool if not _clearly_better(leader, s, remapped=permuted)]
    best = min(tied, key=lambda s: (_distance(s.preprocess, want), s.nll))
    if not permuted and top.accuracy < CHANCE_BAR:
        # Every convention is at chance: one scoring 15% against the declared 8% is noise in a
        # broken model, not a preprocessing fix. Keep the declared input convention.
        best = next((s for s in ok if s.spec == want.to_string()), best)
    # A ReLU network is nearly scale-invariant in its argmax, so feeding it 255× (or 1/255×) its
    # training scale can keep the accuracy while wrecking the confidences. Among conventions tied
    # on accuracy that only rescale the input, a much lower NLL identifies the trained scale.
    confidences_only = False
    if not permuted and best.accuracy >= CHANCE_BAR and _distance(best.preprocess, want) == 0:
        rescaled = [s for s in tied if _distance(s.preprocess, want) == 1
                    and _range_value(s.preprocess) != _range_value(want)
                    and s.nll < best.nll / 2 and best.nll - s.nll > 0.1]
        if rescaled:
            best, confidences_only = min(rescaled, key=lambda s: s.nll), True
    fix = f"--preprocess {best.spec}"
    findings: list[Finding] = []

    all_nan = all(s.non_finite == n for s in ok)
    if decl.error is None and decl.non_finite:
        findings.append(_nan_finding(model, decl, n))
    if decl.error or replace(best.preprocess, output=declared.output).to_string() != declared.to_string():
        effect = shifted_effect(model, declared, replace(best.preprocess, output=declared.output), images,
                                labels) if confidences_only else None
        findings += _input_findings(decl, best, fix, permuted, confidences_only, effect)
    findings += _output_findings(declared, kind, fix)

    if permuted:
        moved = [o for o in range(10) if best.mapping[o] != o]
        inverse = [best.mapping.index(d) for d in range(10)]
        listing = ", ".join(f"{o}→{best.mapping[o]}" for o in moved)
        findings.append(Finding(
            "permuted-labels", "error",
            f"the class order is permuted: {best.accuracy:.1%} as is, {best.remapped_accuracy:.1%} "
            "after relabelling outputs",
            f"The model separates the digits well but its output indices mean other digits "
            f"(output→digit: {listing}).{_permutation_cause(best.mapping)} No --preprocess setting "
            "reorders classes.",
            f"fix the label encoding used in training, or reorder the last layer: "
            f"weight, bias = weight[{inverse}], bias[{inverse}]"
            + ("" if best.spec == declared.to_string() else f"; and evaluate with --preprocess {best.spec}"),
            {"mapping": best.mapping, "reorder": inverse, "preprocess": best.spec}))
    if not permuted and not all_nan and top.accuracy < CHANCE_BAR:
        findings.append(Finding(
            "chance-level", "error",
            f"chance-level accuracy under every convention (best {top.accuracy:.1%})",
            f"No input range, polarity, layout, transposition or output reading gets above "
            f"{CHANCE_BAR:.0%}, and no relabelling of the classes helps ({remap.remapped_accuracy:.1%}): "
            "the model has not learned the task. Usual causes: the weights saved before training or "
            "never loaded; optimizer.step() or zero_grad() missing; a softmax or loss over the wrong "
            "axis (dim=0, the batch, instead of dim=1, the classes); a learning rate so high that "
            "training diverged or so low that nothing moved; images and labels shuffled separately.",
            "check the training loop (loss going down? accuracy on a training batch?) and retrain",
            {"best_accuracy": top.accuracy}))
    if not all_nan and best.top_share >= ONE_CLASS_SHARE and best.top_class is not None:
        findings.append(Finding(
            "one-class", "error",
            f"the model predicts '{best.top_class}' for {best.top_share:.0%} of the images",
            f"Each digit is about 10% of the sample, yet one output wins for {best.top_share:.0%} "
            "of them even under the best convention. The model collapsed to a constant answer: a "
            "bias that dominates the logits, a loss weighted heavily towards one class, training "
            "on one class only, or dead hidden units leaving the output bias in charge.",
            "check the class balance of the training data and the loss, then retrain",
            {"class": best.top_class, "share": best.top_share}))
    if not permuted and not all_nan and CHANCE_BAR <= best.accuracy < HEALTHY_BAR:
        findings.append(Finding(
            "low-accuracy", "warning",
            f"{best.accuracy:.1%} even under the best convention",
            f"No convention brings the model above {HEALTHY_BAR:.0%}; logistic regression reaches "
            "about 92% on MNIST and a small MLP or LeNet 97–99%. It is undertrained or handicapped: "
            "too few epochs, a learning rate far from right, unshuffled training data, or "
            "augmentation that the test digits never show.",
            "train longer with a tuned learning rate; compare training and test accuracy",
            {"best_accuracy": best.accuracy}))

    dead = None
    if check_dead_units and not all_nan:  # NaN activations would read as "never fired"
        dead, why = measure_dead_units(model, best.preprocess.apply_input(_as_unit(images)))
        if why:
            notes.append(why)
        elif dead is not None and (found := _dead_finding(dead)):
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
