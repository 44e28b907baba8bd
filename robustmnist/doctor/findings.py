"""What each finding says: the bars that turn a measurement into a finding, and the words.

Every finding names what is wrong, why it usually happens and the fix (the exact
``--preprocess`` value where one exists); diagnosis.py decides which of them apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.load import LoadedModel
from ..models.preprocess import MNIST_MEAN, MNIST_STD, Preprocess
from .dead_units import DeadUnits
from .measure import ConventionScore, range_value

CHANCE_BAR = 0.20  # 10 classes: 10% is chance; an untrained net wanders between ~5% and ~20%
HEALTHY_BAR = 0.90  # below logistic regression on MNIST (~92%): any working model clears it
PERMUTED_BAR = 0.80  # accuracy after remapping classes that counts as "it learned, but relabelled"
ONE_CLASS_SHARE = 0.50  # one class predicted for half the images (its true share is ~10%)
# A hidden layer with half its ReLUs never firing has lost half its width. Healthy trained
# nets do have some: a LeNet-5 at 98% has ~20% of its fc units silent on MNIST.
DEAD_LAYER_BAR = 0.50

SEVERITIES = ("error", "warning", "info")  # error/warning make the model "unhealthy" (exit 1)


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
            f"range={range_value(declared.preprocess)}, a larger input may just be masking damaged "
            "biases (check the training curve).")


def input_findings(declared: ConventionScore, best: ConventionScore, fix: str, remapped: bool,
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
    if range_value(d) != range_value(b):
        found.append(Finding(
            "input-range", severity,
            f"the model expects {_range_text(b)}, not {_range_text(d)}",
            f"{_range_cause(d, b)} {gain}{symptom}{_masking_caveat(declared, best)}",
            fix, {"declared": range_value(d), "expected": range_value(b)}))
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


def output_findings(declared: Preprocess, kind: str, fix: str | None) -> list[Finding]:
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


def permutation_cause(mapping: list[int]) -> str:
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


def nan_finding(model: LoadedModel, declared: ConventionScore, n: int) -> Finding:
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


def dead_finding(dead: DeadUnits) -> Finding | None:
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


def permuted_finding(best: ConventionScore, declared: Preprocess) -> Finding:
    moved = [o for o in range(10) if best.mapping[o] != o]
    inverse = [best.mapping.index(d) for d in range(10)]
    listing = ", ".join(f"{o}→{best.mapping[o]}" for o in moved)
    return Finding(
        "permuted-labels", "error",
        f"the class order is permuted: {best.accuracy:.1%} as is, {best.remapped_accuracy:.1%} "
        "after relabelling outputs",
        f"The model separates the digits well but its output indices mean other digits "
        f"(output→digit: {listing}).{permutation_cause(best.mapping)} No --preprocess setting "
        "reorders classes.",
        f"fix the label encoding used in training, or reorder the last layer: "
        f"weight, bias = weight[{inverse}], bias[{inverse}]"
        + ("" if best.spec == declared.to_string() else f"; and evaluate with --preprocess {best.spec}"),
        {"mapping": best.mapping, "reorder": inverse, "preprocess": best.spec})


def chance_finding(top: ConventionScore, remap: ConventionScore) -> Finding:
    """``top``: the most accurate convention; ``remap``: the best after relabelling."""
    return Finding(
        "chance-level", "error",
        f"chance-level accuracy under every convention (best {top.accuracy:.1%})",
        f"No input range, polarity, layout, transposition or output reading gets above "
        f"{CHANCE_BAR:.0%}, and no relabelling of the classes helps ({remap.remapped_accuracy:.1%}): "
        "the model has not learned the task. Usual causes: the weights saved before training or "
        "never loaded; optimizer.step() or zero_grad() missing; a softmax or loss over the wrong "
        "axis (dim=0, the batch, instead of dim=1, the classes); a learning rate so high that "
        "training diverged or so low that nothing moved; images and labels shuffled separately.",
        "check the training loop (loss going down? accuracy on a training batch?) and retrain",
        {"best_accuracy": top.accuracy})


def one_class_finding(best: ConventionScore) -> Finding:
    return Finding(
        "one-class", "error",
        f"the model predicts '{best.top_class}' for {best.top_share:.0%} of the images",
        f"Each digit is about 10% of the sample, yet one output wins for {best.top_share:.0%} "
        "of them even under the best convention. The model collapsed to a constant answer: a "
        "bias that dominates the logits, a loss weighted heavily towards one class, training "
        "on one class only, or dead hidden units leaving the output bias in charge.",
        "check the class balance of the training data and the loss, then retrain",
        {"class": best.top_class, "share": best.top_share})


def low_accuracy_finding(best: ConventionScore) -> Finding:
    return Finding(
        "low-accuracy", "warning",
        f"{best.accuracy:.1%} even under the best convention",
        f"No convention brings the model above {HEALTHY_BAR:.0%}; logistic regression reaches "
        "about 92% on MNIST and a small MLP or LeNet 97–99%. It is undertrained or handicapped: "
        "too few epochs, a learning rate far from right, unshuffled training data, or "
        "augmentation that the test digits never show.",
        "train longer with a tuned learning rate; compare training and test accuracy",
        {"best_accuracy": best.accuracy})
