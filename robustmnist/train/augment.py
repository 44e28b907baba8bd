"""Training-time augmentation with the shift catalog: ``--augment NAMES`` of ``robustmnist train``.

``plan_augmentation`` resolves shift and family names into the shifts that can be used (with the
per-severity parameters of a suite); ``Augmenter`` replaces part of each training batch with
shifted digits, all draws from one generator derived from the training seed.

Train/test separation, so that evaluating an augmented model still measures robustness:

- Every draw comes from seeds derived from "robustmnist-train-*" names, never from the
  "robustmnist-set" seeds of evaluation sets, so no training batch replays an evaluation image.
- Generative shifts that take a ``split`` (the fonts) render only their *training* faces
  (``split="train"``); the evaluation sets use the disjoint evaluation faces.
- The checkpoint records the shifts and their families (``training.augment``), and ``eval``
  marks those families "seen in training" and leaves them out of the headline numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UserError
from ..shifts.registry import Shift, all_shifts, resolve_names
from ..shifts.sets import derive_seed

FONT_POOL_PER_LEVEL = 1000  # generated digits kept per (generative shift, severity)


@dataclass
class AugmentPlan:
    """Which shifts augmentation uses, the parameters of each severity, and what was skipped."""

    transforms: list[tuple[Shift, list[dict[str, Any]]]]
    generative: list[tuple[Shift, list[dict[str, Any]]]]
    skipped: list[str] = field(default_factory=list)  # "name: why"
    suite: str = ""
    notes: list[str] = field(default_factory=list)  # where the parameters came from, if unusual

    @property
    def names(self) -> list[str]:
        return [s.name for s, _ in self.transforms + self.generative]

    @property
    def families(self) -> list[str]:
        out: list[str] = []
        for s, _ in self.transforms + self.generative:
            if s.family not in out:
                out.append(s.family)
        return out


def training_params(shift: Shift, params: dict[str, Any]) -> dict[str, Any]:
    """A level's parameters as augmentation uses them: the training split where one exists."""
    if "split" in inspect.signature(shift.fn).parameters:
        return {**params, "split": "train"}
    return params


def _load_params_suite(suite_name: str) -> tuple[dict[str, list[dict]], str, list[str]]:
    """{shift: params per level} from the suite; falls back to the spec parts when the assembled
    suite is missing (shifts/default.toml is built from shifts/parts/*.toml)."""
    from ..assets import shifts_dir
    from ..shifts.suite import load_suite

    notes: list[str] = []
    try:
        suite = load_suite(suite_name)
        return dict(suite.shift_params), suite.name, notes
    except UserError as exc:
        notes.append(f"suite '{suite_name}' unusable ({exc}); using shifts/parts/*.toml")
    params: dict[str, list[dict]] = {}
    try:
        parts = sorted((shifts_dir() / "parts").glob("*.toml"))
    except FileNotFoundError:
        parts = []
    for part in parts:
        try:
            # The first part to define a shift wins, so an MNIST-C part ("mnistc-*.toml", one
            # level) does not replace our five-level ladder of the same shift.
            for name, levels in load_suite(str(part)).shift_params.items():
                params.setdefault(name, levels)
        except UserError as exc:
            notes.append(f"{part.name}: {exc}")
    return params, "parts", notes


def _probe_shift(shift: Shift, levels: list[dict[str, Any]]) -> str | None:
    """Run a shift once per level on a few blank-ish digits; the error text if it fails."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    y = torch.arange(4)
    try:
        for params in levels:
            if shift.kind == "generative":
                out, _ = shift.generate(2, g, **training_params(shift, params))
            else:
                out = shift.apply(x.clone(), g, y=y, **params)
            if out.shape[1:] != (1, 28, 28):
                return f"returned shape {tuple(out.shape)}"
    except Exception as exc:  # noqa: BLE001 - any failure means: don't train with this shift
        return f"failed on a probe batch ({type(exc).__name__}: {exc})"
    return None


def plan_augmentation(
    spec: str | Sequence[str], suite: str = "default", digits: bool = True
) -> AugmentPlan:
    """Resolve names/families into usable shifts with their per-severity parameters.

    A shift is skipped (with a note) when the suite gives it no parameters, when it needs digit
    labels or makes digits but the data are not digits, or when it fails on a probe batch.
    """
    names = resolve_names(list(spec) if not isinstance(spec, str) else spec)
    params, suite_name, notes = _load_params_suite(suite)
    shifts = all_shifts()
    plan = AugmentPlan([], [], suite=suite_name, notes=notes)
    for name in names:
        shift = shifts[name]
        if shift.kind != "transform" and not digits:
            plan.skipped.append(f"{name}: {shift.kind} shifts only make sense for digit data")
            continue
        if name not in params:
            plan.skipped.append(f"{name}: no severity parameters in suite '{suite_name}'")
            continue
        failure = _probe_shift(shift, params[name])
        if failure:
            plan.skipped.append(f"{name}: {failure}")
            continue
        target = plan.generative if shift.kind == "generative" else plan.transforms
        target.append((shift, params[name]))
    if not plan.names:
        raise UserError(
            f"`augment=\"{','.join(names) if names else spec}\"`: none of these shifts can be used "
            f"for training ({'; '.join(plan.notes + plan.skipped) or 'nothing matched'})"
        )
    return plan


class Augmenter:
    """Replaces a random ``fraction`` of each batch with shifted digits.

    Each picked sample gets a random shift from the plan at a random severity; samples sharing a
    (shift, severity) are shifted together in one batched call. Generative shifts (fonts) cannot
    edit an image, so their picks are swapped for generated digits and labels drawn from a pool
    built once up front. All draws come from one generator derived from the seed.
    """

    def __init__(self, plan: AugmentPlan, seed: int, fraction: float = 0.5,
                 pool_per_level: int = FONT_POOL_PER_LEVEL):
        self.plan = plan
        self.fraction = fraction
        self.options: list[tuple[Shift, list[dict[str, Any]]]] = plan.transforms + plan.generative
        # Suites may give a shift fewer levels (MNIST-C parts have one), so each option draws
        # its severity from its own ladder.
        self.n_levels = torch.tensor([len(levels) for _, levels in self.options])
        self.max_levels = int(self.n_levels.max())
        self.g = torch.Generator().manual_seed(derive_seed("robustmnist-train-augment", seed))
        self.pools: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for shift, levels in plan.generative:
            for sev, params in enumerate(levels, start=1):
                g = torch.Generator().manual_seed(
                    derive_seed("robustmnist-train-pool", shift.name, shift.version, sev, seed))
                x, y = shift.generate(pool_per_level, g, **training_params(shift, params))
                self.pools[(shift.name, sev)] = (x.float(), y.long())

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(x)
        picked = (torch.rand(n, generator=self.g) < self.fraction).nonzero().squeeze(1)
        if len(picked) == 0:
            return x, y
        which = torch.randint(len(self.options), (len(picked),), generator=self.g)
        u = torch.rand(len(picked), generator=self.g)
        severity = (u * self.n_levels[which]).long() + 1  # uniform over each option's levels
        group = which * self.max_levels + (severity - 1)
        x, y = x.clone(), y.clone()
        for key in torch.unique(group).tolist():  # sorted: the order is deterministic
            rows = picked[group == key]
            shift, levels = self.options[key // self.max_levels]
            sev = key % self.max_levels + 1
            if shift.kind == "generative":
                px, py = self.pools[(shift.name, sev)]
                take = torch.randint(len(px), (len(rows),), generator=self.g)
                x[rows], y[rows] = px[take], py[take]
            else:
                x[rows] = shift.apply(x[rows], self.g, y=y[rows], **levels[sev - 1])
        return x, y
