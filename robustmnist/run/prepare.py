"""What every evaluation checks and reads before it scores anything: eval, bench and the Python
API's ``evaluate`` call these, so they refuse the same input with the same message, in the same
order (cheap checks before any model or data is read), and plan n the same way.

``check_request`` runs before any model is loaded; ``prepare`` after: it reads the clean and
real sets, runs the convention guard on every model whose convention was not given explicitly,
and plans n within the time budget. ``finish`` puts the guard's verdict and the mCE into a result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UserError


def check_request(n: int | None, batch_size: int | None, ood: Sequence[str] | None = None,
                  real: Sequence[str] | None = None) -> None:
    """Counts below 1 and unknown OOD/real set names, refused before any data is read or a bar is
    drawn."""
    if n is not None and n < 1:
        raise UserError(f"`n=` must be at least 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"`batch_size=` must be at least 1, got {batch_size}")
    if ood:
        from ..data.ood import check_ood_names

        check_ood_names(list(ood))
    if real:
        from ..data.real import check_real_names

        check_real_names(list(real))


def load_real_sets(names: Sequence[str] | None, data_root, n: int | None):
    """Real sets read and framed up front, so a missing one fails before any progress output."""
    if not names:
        return None
    from ..data.real import load_real

    return [load_real(name, data_root, n) for name in names]


def split_auto(preprocess: str | None) -> tuple[bool, str | None]:
    """``preprocess="auto"`` -> (True, None): load as declared, let the guard choose."""
    if isinstance(preprocess, str) and preprocess.strip().lower() == "auto":
        return True, None
    return False, preprocess


def resume_convention(prior, model):
    """Resuming a preprocess="auto" run: the convention it detected and applied, put back on
    ``model`` (so the finished sets and the rest are scored alike) with its verdict; None when that
    run applied nothing (the guard then runs as usual)."""
    from ..doctor.guard import ConventionCheck
    from ..models.preprocess import Preprocess

    check = prior.result.summary.get("convention_check") or {}
    if not check.get("applied"):
        return None
    model.preprocess = Preprocess.parse(prior.result.model.preprocess)
    return ConventionCheck.from_dict(check)


@dataclass
class Prepared:
    models: list  # on their fastest exact forward paths (budget.plan_run)
    plan: Any  # budget.Plan: n, and why
    clean: Any  # data.MnistSplit of the clean test set
    real_sets: list | None
    checks: list  # the convention guard's verdict per model (None: convention given explicitly)


def prepare(models: list, suite, *, explicit: Sequence[bool], data_root=None, n: int | None = None,
            real: Sequence[str] | None = None, ood_sets: int = 0, budget: float | None = None, seed: int = 0,
            use_cache: bool = True, batch_size: int = 512, force: bool = False,
            warn: Callable[[str], None] | None = None, resume_n: int | None = None,
            spent_s: float = 0.0, fast: bool = True, auto: Sequence[bool] | None = None,
            log: Callable[[str], None] | None = None) -> Prepared:
    """Read the data, guard every model's convention (all before any is scored: a wrong one is
    found in seconds, not after the grid), plan n. ``explicit[i]``: model i's convention was given
    (--preprocess or MODEL::SPEC), which is the user's call, so the guard skips it. ``auto[i]``:
    model i asked for preprocess="auto": the guard's fix is applied, never a stop (``log`` says so)."""
    from ..data.datasets import load_mnist
    from ..doctor.guard import guard
    from .budget import plan_run

    clean = load_mnist("test", data_root)  # a missing data root fails before any progress output
    real_sets = load_real_sets(real, data_root, n)
    auto = list(auto) if auto is not None else [False] * len(models)
    checks = [None if given else guard(m, data_root=data_root, force=force, warn=warn, auto=a, log=log)
              for m, given, a in zip(models, explicit, auto, strict=True)]
    fast_models, plan = plan_run(models, suite, clean_images=clean.images, clean_labels=clean.labels, n=n,
                                 budget=budget, seed=seed, ood_sets=ood_sets, use_cache=use_cache,
                                 batch_size=batch_size, resume_n=resume_n, spent_s=spent_s, fast=fast)
    return Prepared(fast_models, plan, clean, real_sets, checks)


def finish(result, check, reference=None) -> None:
    """The guard's verdict into the summary; CE/mCE against the reference (default: the pinned one)."""
    from ..doctor.guard import record

    record(result, check)
    if result.shifts:
        from ..metrics.corruption import apply_reference
        from ..metrics.reference import DEFAULT_REFERENCE

        if reference is not None or DEFAULT_REFERENCE.is_file():
            apply_reference(result, reference)
