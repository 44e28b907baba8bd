"""Run a plan: clean MNIST, every (shift, severity) set, real and OOD sets, attacks -> one
RunOutput per model. The one loop every entry point (CLI, Python API, bench, Ray) goes through.

Sets are the outer loop: each is generated (or read from the cache) once and scored by every
model before the next one, so a leaderboard of k models costs one generation pass. Only
per-image predictions (1 byte each) outlive a set, so memory stays flat however large the
suite is. Where sets are made and scored is the executor's business (local.py, ray.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..data.datasets import DigitSet
from ..metrics.real import real_records
from ..models.fastpath import as_loaded
from ..models.load import LoadedModel
from ..shifts.suite import Suite
from .collector import ModelCollector, RunOutput
from .executor import Executor, RunContext
from .plan import clean_and_source, plan_sets
from .scoring import DEFAULT_BATCH, ProgressFn, sample_indices, whole_clean

# on_update(snapshot): called after clean and after each set; snapshot() builds the outputs so far,
# every one marked partial. A thunk, because building them summarises every record so far: a saver
# that writes every few seconds builds a few dozen, not one per set (O(sets^2) over a run).
UpdateFn = Callable[[Callable[[], list[RunOutput]]], None]


def evaluate(model: LoadedModel, suite: Suite | None, **kwargs) -> RunOutput:
    """Evaluate one model; see ``evaluate_many``."""
    name = kwargs.pop("name", None)
    return evaluate_many([model], suite, names=[name] if name else None, **kwargs)[0]


def _declared(n_models: int, trained_on, trained_on_each) -> list:
    """What each model is declared to have been trained on (bench: MODEL::trained-on=...)."""
    if trained_on_each is None:
        return [trained_on] * n_models
    if len(trained_on_each) != n_models:
        raise ValueError(f"trained_on_each has {len(trained_on_each)} entries for {n_models} models")
    return list(trained_on_each)


def evaluate_many(
    models: list[LoadedModel],
    suite: Suite | None,
    *,
    executor: Executor | None = None,
    n: int | None = None,
    seed: int = 0,
    ood: list[str] | None = None,
    data_root: str | os.PathLike | None = None,
    batch_size: int = DEFAULT_BATCH,
    use_cache: bool = True,
    names: list[str] | None = None,
    progress: ProgressFn | None = None,
    clean: DigitSet | None = None,
    attacks=None,
    real: list[str] | None = None,
    real_sets: list | None = None,
    fast: bool = True,
    execution: dict | None = None,
    on_update: UpdateFn | None = None,
    resume: list[RunOutput | None] | None = None,
    trained_on: str | list[str] | None = None,
    trained_on_each: list[str | None] | None = None,
    selective_coverage: float = 0.95,
    conformal_alpha: float = 0.1,
    clean_all: bool = True,
) -> list[RunOutput]:
    """Score every model on clean MNIST, each (shift, severity) set, each OOD set and each real
    set (``real``: names as data.real.load_real takes them; ``real_sets``: data.real.RealSet in
    memory), with ``executor`` (default: local).

    ``attacks`` (an ``attacks.evaluate.AttackPlan``, or one per model) adds the adversarial
    section; attacks run here, on the models as loaded (they need gradients). ``fast`` runs each
    model on its fastest exact forward path; ``execution`` (n, budget, reason: see budget.py)
    goes into every result as it is; ``on_update`` sees partial results as sets finish (to save
    them as the run goes) and ``resume`` (one earlier partial output per model) skips the sets
    it already holds. The clean record scores every clean digit (``clean_all``), whatever n;
    shifted sets, flip rates and OOD pair with the first n.

    Records of families a model saw in training (its checkpoint's record, plus ``trained_on``
    shift/family names for every model, or ``trained_on_each``: one entry per model) are marked
    ``seen`` and left out of the headline.

    ``selective_coverage`` (the share of clean digits the confidence threshold accepts) and
    ``conformal_alpha`` fix what every set's deployment records are measured at (metrics/deployment.py).
    """
    from .local import LocalExecutor

    t_start = time.perf_counter()
    t = time.perf_counter()
    clean, source = clean_and_source(clean, n, data_root)
    n_clean = len(clean.images)
    load_s = time.perf_counter() - t
    loaded = [as_loaded(m) for m in models]  # gradient-based attacks need the torch module itself
    # unknown trained_on names fail before any work
    declared = _declared(len(models), trained_on, trained_on_each)
    if real:  # by name: read and framed here, before any scoring
        from .prepare import load_real_sets

        real_sets = load_real_sets(real, data_root, n) + list(real_sets or [])
    ex = executor if executor is not None else LocalExecutor()
    ctx = RunContext(clean=clean, source=source, n=n, seed=seed, batch_size=batch_size, use_cache=use_cache,
                     data_root=data_root, fast=fast, progress=progress, ood=tuple(ood or ()))
    runs = [ModelCollector(m, names[i] if names else None, shared=len(models) > 1, trained_on=d,
                           target_coverage=selective_coverage, alpha=conformal_alpha)
            for i, (m, d) in enumerate(zip(models, declared, strict=True))]
    priors = _resumed(runs, resume)
    sets = plan_sets(suite, priors)

    def outputs(partial: bool, ood_records=None, real=None, adversarial=None) -> list[RunOutput]:
        outs = []
        for i, run in enumerate(runs):
            out = run.output(suite, n_clean, seed, t_start, execution, partial,
                             ood_records[i] if ood_records else (), real[i] if real else None,
                             adversarial[i] if adversarial else None)
            ex.annotate(out)
            outs.append(out)
        return outs

    def update() -> None:
        if on_update:
            on_update(lambda: outputs(True))

    try:
        scored_models = ex.open(models, ctx)
        for run, m in zip(runs, scored_models, strict=True):
            run.model = m
            run.timings["load_data"] = load_s
        indices = sample_indices(clean.labels)
        for run, unit in zip(runs, ex.score_clean(), strict=True):
            whole = whole_clean(run.model, unit, source.images, source.labels, indices, batch_size, progress) \
                if clean_all else None
            run.add_clean(unit, clean.labels, whole, source.labels)
        update()
        for held in sets.held:
            for run, prior, record in zip(runs, priors, held, strict=True):
                run.take_prior(prior, record)
        for s in ex.score_sets(sets.todo):
            req = s.request
            for run, unit in zip(runs, s.units, strict=True):
                run.timings["generate"] += s.generate_s / len(runs)
                run.add_shift(unit, req.shift, req.severity, req.params, s.sha256, s.cached, s.labels, s.chunks)
            if progress:
                progress("set", 1, f"{req.shift.name} s{req.severity}")
            update()

        real = None
        if real_sets:
            t = time.perf_counter()
            logits = ex.real_logits([rs.images for rs in real_sets])
            real = real_records(real_sets, logits, [run.clean_m for run in runs], [run.records for run in runs])
            for run in runs:
                run.timings["real"] = (time.perf_counter() - t) / len(runs)
        ood_records = None
        if ood:
            ood_records = []
            for run, (records, seconds) in zip(runs, ex.ood_records([r.clean_logits for r in runs]), strict=True):
                run.timings["ood"] = seconds
                ood_records.append(records)
    finally:
        ex.close()

    adversarial = None
    if attacks is not None:
        from ..attacks.evaluate import evaluate_attacks  # the attacks package owns adversarial metrics

        adversarial = []
        for i, run in enumerate(runs):
            plan = attacks[i] if isinstance(attacks, list) else attacks  # one plan, or one per model
            if plan is None:
                adversarial.append(None)
                continue
            t = time.perf_counter()
            adversarial.append(evaluate_attacks(loaded[i], clean.images, clean.labels, plan, progress))
            run.timings["attack"] = time.perf_counter() - t
    return outputs(False, ood_records, real, adversarial)


def _resumed(runs: list[ModelCollector], resume: list[RunOutput | None] | None) -> list[RunOutput]:
    """The earlier outputs to take finished sets from (all models need one, or none is used)."""
    if not resume or any(p is None for p in resume):
        return []
    if len(resume) != len(runs):
        raise ValueError("resume needs one earlier output per model")
    for run, prior in zip(runs, resume, strict=True):
        run.resume_from(prior)
    return list(resume)


def scored_images(ood: list[str] | None, n: int | None) -> int:
    """How many images the OOD sets add to a run (the progress bar's total)."""
    from ..data.datasets import list_image_folder
    from ..data.ood import SYNTHETIC_N

    total = 0
    for name in ood or []:
        size = len(list_image_folder(os.path.expanduser(name[7:]))[0]) if name.startswith("folder:") \
            else SYNTHETIC_N  # Fashion-MNIST and CIFAR-10 test sets are 10,000 images too
        total += min(size, n) if n else size
    return total

