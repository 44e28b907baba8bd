"""Signs that an attack failed rather than the model resisted (gradient masking).

Athalye et al. (2018) and Carlini et al.'s checklist (2019): randomised or probability outputs,
gradients that are zero where the attack starts, accuracy that does not fall as the radius
grows, and a gradient-free or single-step attack doing better than many gradient steps are the
usual symptoms. Each check gives a sentence for the terminal and the report, or nothing.
"""

from __future__ import annotations

import torch

from .target import Target, gradient_and_logits

ZERO_GRAD_SHARE = 0.05


def forward_checks(target: Target, x: torch.Tensor, y: torch.Tensor, output_kind: str) -> tuple[list[str], dict]:
    """Checks before attacking, on a batch of clean-correct images."""
    warnings: list[str] = []
    with torch.no_grad():
        a, b = target(x), target(x)
    diff = float((a - b).abs().max()) if len(x) else 0.0
    probs = torch.softmax(a, 1) if len(x) else a
    raw = target.loaded.module(target.loaded.preprocess.apply_input(x)) if len(x) else a
    if isinstance(raw, tuple | list):
        raw = raw[0]
    raw = torch.as_tensor(raw).float()
    looks_like_probs = bool(len(x)) and bool((raw.min() >= 0) & (raw.max() <= 1)) and \
        bool(((raw.sum(1) - 1).abs() < 1e-4).all())
    checks = {"forward_max_difference": diff, "output_kind": output_kind,
              "outputs_look_like_probabilities": looks_like_probs,
              "mean_confidence": float(probs.max(1).values.mean()) if len(x) else None}
    if diff > 1e-4:
        warnings.append(f"two identical forward passes differ by up to {diff:.3g}: a randomised model "
                        "needs EOT attacks (averaged gradients); these robust accuracies are too high")
    if output_kind == "probs" or looks_like_probs:
        warnings.append("the model outputs probabilities: attacks differentiate log(p), whose gradient "
                        "vanishes where softmax saturates; export the logits for a trustworthy number")
    if target.differentiable and len(x):
        grad, _ = gradient_and_logits(target, x, y)
        zero = float((grad.flatten(1).abs().sum(1) == 0).float().mean())
        checks["zero_gradient_share"] = zero
        if zero > ZERO_GRAD_SHARE:
            warnings.append(f"the loss gradient is exactly zero at {zero:.0%} of the clean images: "
                            "gradient attacks cannot start there (masking); trust Square's number more")
    return warnings, checks


def ladder_checks(records, clean_accuracy: float, norm: str) -> list[str]:
    """After attacking: robust accuracy must fall as eps grows; weak attacks must not beat PGD."""
    warnings: list[str] = []
    if not records:
        return warnings
    slack = lambda r: max(0.01, 2.0 / max(r.n, 1))  # noqa: E731 - a couple of images of noise
    for lo, hi in zip(records, records[1:], strict=False):
        if hi.robust_accuracy > lo.robust_accuracy + slack(hi):
            warnings.append(f"robust accuracy rises from {lo.robust_accuracy:.1%} at eps {lo.eps:g} to "
                            f"{hi.robust_accuracy:.1%} at eps {hi.eps:g}: a larger ball cannot be safer "
                            "(the attack is failing, not the model resisting)")
    last = records[-1]
    if len(records) > 1 and last.robust_accuracy >= clean_accuracy - slack(last):
        warnings.append(f"accuracy does not fall with eps (clean {clean_accuracy:.1%}, "
                        f"{last.robust_accuracy:.1%} at {norm} eps {last.eps:g}): suspect masking")
    for r in records:
        pa = r.per_attack
        strong = next((a for a in ("pgd", "apgd-ce") if a in pa), None)
        if strong is None:
            continue
        for weak in ("square", "fgsm"):
            if weak in pa and pa[weak]["success_rate"] > pa[strong]["success_rate"] + slack(r):
                warnings.append(f"{weak} breaks more images than {strong} at eps {r.eps:g} "
                                f"({pa[weak]['success_rate']:.1%} vs {pa[strong]['success_rate']:.1%}): "
                                "the gradients mislead the attack (masking)")
    return warnings
