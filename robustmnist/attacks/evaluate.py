"""Evaluate a model under attack: the adversarial section of results.json.

As the evaluation checklists ask (Carlini et al. 2019, AutoAttack): the logits are attacked
(through the model's preprocess spec, eps in 0-1 pixels); only clean-correct images are
attacked and clean mistakes count as broken; each attack runs on its own over every
clean-correct image (so per-attack success rates compare) and an image is robust only if it
survives all of them; every adversarial image is checked (finite, inside [0, 1], within the
ball up to float slack) and re-predicted in eval mode before it counts; all randomness comes
from seeds derived from ``seed``, so a run is reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import UserError
from ..metrics.classification import wilson_interval
from ..models.load import LoadedModel
from ..results import AdversarialRecord, AdversarialSection
from ..shifts.sets import derive_seed
from . import budget, masking
from .registry import AttackConfig, check_norm, eps_for, get_attack, resolve_attacks
from .target import Target, has_gradients

ATTACK_BATCH = 250  # AutoAttack's default; chunks are fixed, so a longer prefix keeps the first results
GALLERY = 8
NORM_SLACK = 1e-5  # float32 rounding of x + delta, relative to eps

# progress(kind, advance_images, status_text), as run.scoring.ProgressFn; kind is "attack"
ProgressFn = Callable[[str, int, str], None]


@dataclass(frozen=True)
class AttackPlan:
    """What an attack run will do; made (and its ETA printed) before any attack starts."""

    attacks: tuple[str, ...]
    norm: str
    eps: tuple[tuple[int, float], ...]  # (severity, eps)
    n: int
    n_available: int
    seed: int = 0
    restarts: int = 1
    steps: int = 40
    prefix: str = ""
    eta_seconds: float | None = None
    black_box: bool = False

    def configs(self) -> list[AttackConfig]:
        return [AttackConfig(self.norm, e, self.seed, self.steps, self.restarts) for _, e in self.eps]

    def describe(self) -> str:
        eps = ", ".join(f"{e:g}" for _, e in self.eps)
        eta = "" if self.eta_seconds is None else f"; ETA {_duration(self.eta_seconds)}"
        bb = " (black-box: the model has no gradients)" if self.black_box else ""
        return (f"attacks {', '.join(self.attacks)}{bb} at {self.norm} eps {eps} on the {self.prefix}"
                f"{eta} if every image resists every step (less as they break; measured speed, so a "
                "machine that gets busier takes longer)")


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def plan_attacks(model: LoadedModel, names: str | list[str], *, norm: str = "linf",
                 severities: list[int] | None = None, n: int | None = None, budget_s: float | None = None,
                 restarts: int = 1, steps: int = 40, seed: int = 0, n_available: int = 10_000,
                 default_budget: bool = True) -> AttackPlan:
    """Resolve names, check them against the model, and size the prefix to the time budget.

    ``budget_s`` None with ``default_budget`` means: the CPU default on CPU, no limit on CUDA.
    """
    norm = check_norm(norm)
    attacks = resolve_attacks(names)
    if restarts < 1 or steps < 1:
        raise UserError(f"`restarts=` and PGD steps must be at least 1, got {restarts} and {steps}")
    if n is not None and n < 1:
        raise UserError(f"`attack_n=` must be at least 1, got {n}")
    target = Target(model).eval()
    black_box = not has_gradients(target)
    if black_box:
        white = [a for a in attacks if get_attack(a).needs_gradients]
        if white:
            raise UserError(f"{model.name} ({model.format}) gives no gradients, so {', '.join(white)} cannot "
                            "run; use `attack=\"square\"` (black-box)")
    plan = AttackPlan(tuple(attacks), norm, tuple(eps_for(norm, severities)), 0, n_available, seed,
                      restarts, steps, black_box=black_box)
    if budget_s is None and default_budget and model.device.type == "cpu":
        budget_s = budget.DEFAULT_CPU_BUDGET_S
    per_grad = budget.seconds_per_gradient(target, differentiable=not black_box)
    per_image = per_grad * budget.gradients_per_image(attacks, plan.configs())
    k, why = budget.choose_prefix(per_image, n_available, budget_s, n)
    return replace(plan, n=k, prefix=why, eta_seconds=per_image * k)


def evaluate_attacks(model: LoadedModel, images: np.ndarray, labels: np.ndarray, plan: AttackPlan,
                     progress: ProgressFn | None = None) -> AdversarialSection:
    """Run the plan on the first ``plan.n`` images (uint8 N×28×28) and their labels."""
    target = Target(model).eval()
    dev = model.device
    x = torch.from_numpy(np.ascontiguousarray(images[: plan.n])).float().div_(255.0).unsqueeze(1).to(dev)
    y = torch.from_numpy(np.asarray(labels[: plan.n], dtype=np.int64)).to(dev)
    with torch.no_grad():
        clean_pred = _predict(target, x)
    correct = clean_pred == y
    idx_correct = torch.nonzero(correct).flatten()
    warnings, checks = masking.forward_checks(target, x[idx_correct[:ATTACK_BATCH]],
                                              y[idx_correct[:ATTACK_BATCH]], model.preprocess.output)
    clean_acc = float(correct.float().mean())
    records = []
    for (sev, eps), cfg in zip(plan.eps, plan.configs(), strict=True):
        records.append(_attack_radius(target, x, y, correct, sev, eps, cfg, plan, progress))
    warnings += masking.ladder_checks(records, clean_acc, plan.norm)
    checks["clean_accuracy"] = clean_acc
    return AdversarialSection(
        attacks=list(plan.attacks), norm=plan.norm, n=plan.n, n_available=plan.n_available, seed=plan.seed,
        restarts=plan.restarts, steps=plan.steps, black_box=plan.black_box,
        implementations={a: get_attack(a).implementation for a in plan.attacks},
        prefix=plan.prefix, eta_seconds=plan.eta_seconds, records=records, warnings=warnings, checks=checks,
    )


def _predict(target: Target, x: torch.Tensor) -> torch.Tensor:
    out = torch.empty(len(x), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for s in range(0, len(x), 1000):
            out[s:s + 1000] = target(x[s:s + 1000]).argmax(1)
    return out


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Per image: finite, inside [0, 1] and within the eps-ball (float slack) — else rejected."""
    finite = torch.isfinite(x_adv).flatten(1).all(1)
    x_adv = torch.nan_to_num(x_adv)
    in_box = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)
    in_ball = perturbation_norm(x_adv - x, norm) <= eps * (1 + NORM_SLACK) + 1e-6
    return finite & in_box & in_ball


def _attack_radius(target, x, y, correct, sev, eps, cfg, plan, progress) -> AdversarialRecord:
    t0 = time.perf_counter()
    n = len(x)
    survived = correct.clone()  # robust so far (clean mistakes count as broken)
    first_adv = x.clone()
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    per_attack: dict[str, dict] = {}
    n_correct = int(correct.sum())
    for name in plan.attacks:
        attack = get_attack(name)
        ta = time.perf_counter()
        broken = torch.zeros(n, dtype=torch.bool, device=x.device)
        rejected = 0
        for c, start in enumerate(range(0, n, ATTACK_BATCH)):
            sl = torch.arange(start, min(n, start + ATTACK_BATCH), device=x.device)
            idx = sl[correct[sl]]
            if progress:
                progress("attack", 0, f"{name} {plan.norm} eps {eps:g}")
            if len(idx):
                seeded = replace(cfg, seed=derive_seed("robustmnist-attack", name, plan.norm, eps, c, plan.seed))
                xb, yb = x[idx], y[idx]
                xa = attack.fn(target, xb, yb, seeded).detach().to(x.device).reshape(xb.shape)
                valid = check_adversarial(xb, xa, eps, plan.norm)
                rejected += int((~valid).sum())
                with torch.no_grad():
                    wrong = _predict(target, torch.where(valid.view(-1, 1, 1, 1), xa, xb)) != yb
                hit = idx[wrong & valid]
                broken[hit] = True
                new = hit[~found[hit]]
                first_adv[new] = xa[(wrong & valid)][~found[hit]]
                found[new] = True
            if progress:
                progress("attack", len(sl), f"{name} {plan.norm} eps {eps:g}")
        survived &= ~broken
        stands = correct & ~broken
        per_attack[name] = {
            "robust_accuracy": float(stands.float().mean()),
            "success_rate": float(broken.sum()) / n_correct if n_correct else 0.0,
            "seconds": round(time.perf_counter() - ta, 3),
            "rejected": rejected,
        }
    k = int(survived.sum())
    y_np = y.cpu().numpy()
    surv = survived.cpu().numpy()
    per_class = [float(surv[y_np == c].mean()) if (y_np == c).any() else None for c in range(10)]
    norms = perturbation_norm(first_adv[found] - x[found], plan.norm)
    return AdversarialRecord(
        severity=sev, eps=eps, n=n, clean_correct=n_correct, robust_accuracy=k / n if n else 0.0,
        robust_accuracy_ci=list(wilson_interval(k, n)), per_class_robust_accuracy=per_class,
        per_attack=per_attack, median_norm=float(norms.median()) if len(norms) else None,
        seconds=round(time.perf_counter() - t0, 3), gallery=_gallery(target, x, y, first_adv, found),
    )


def _gallery(target, x, y, x_adv, found) -> list[dict]:
    from ..report.images import png_b64  # the gallery encoder (tiny PNGs inside results.json)

    idx = torch.nonzero(found).flatten()[:GALLERY]
    if not len(idx):
        return []
    with torch.no_grad():
        probs = torch.softmax(target(x_adv[idx]), 1)
    conf, pred = probs.max(1)

    def u8(t):
        return (t.squeeze(0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    def stretched(d):  # |delta| scaled to its own maximum, so a faint perturbation is visible
        return u8(d.abs() / d.abs().max().clamp_min(1e-12))

    return [{"index": int(i), "true": int(y[i]), "pred": int(p), "confidence": float(c),
             "png": png_b64(u8(x_adv[i])), "clean_png": png_b64(u8(x[i])),
             "perturbation_png": png_b64(stretched(x_adv[i] - x[i]))}
            for i, p, c in zip(idx.tolist(), pred.tolist(), conf.tolist(), strict=True)]
