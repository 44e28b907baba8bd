"""The Python API, and the one service under the CLI and notebooks alike.

    import robustmnist
    result = robustmnist.evaluate(model, suite="quick", n=1000)   # nn.Module, path or callable
    result.to_pandas()          # the tidy table of results.csv
    result                      # in Jupyter: the report, inline
    result.save("out/")         # results.json, predictions.npz, report.html/.md, results.csv
    board = robustmnist.bench(["a.pt", "b.pt"], suite="quick", out="bench/")   # leaderboard

``evaluate`` and ``bench`` take everything ``robustmnist eval`` and ``bench`` take, by the
same names; the commands only parse flags, call them and print. Errors name the parameter
(``n=``); the CLI shows the flag (``--n``) instead (errors.py, cli/flags.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .api_bench import BenchResult, bench  # noqa: F401  (robustmnist.api.bench, as documented)
from .api_common import ALL_FORMATS, Result, as_list, build_suite, print_log, print_warning  # noqa: F401  (Result, build_suite: public here)
from .errors import RunInterrupted, UserError
from .models.load import LoadedModel
from .run.scoring import DEFAULT_BATCH, ProgressFn


def load_model(model: Any, *, arch: str | None = None, preprocess: str | None = None,
               trust_pickle: bool = False, model_code: str | os.PathLike | None = None,
               model_kwargs: dict | str | None = None, name: str | None = None) -> LoadedModel:
    """A model file (any supported format) or an in-memory model, ready to score."""
    from .models.load import load_model as load_file
    from .models.load import load_object

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str | os.PathLike):
        return load_file(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                         model_code=model_code, model_kwargs=model_kwargs)
    if arch or model_code or model_kwargs:
        raise UserError("arch, model_code and model_kwargs describe a model file; "
                        "an in-memory model is already built")
    return load_object(model, preprocess=preprocess, name=name)


def evaluate(model: Any = None, *, suite: Any = None, shift: str | Sequence[str] | None = None,
             severity: int | Sequence[int] | str | None = None, n: int | None = None,
             ood: str | Sequence[str] | None = None, real: Any = None, preprocess: str | None = None,
             device: str = "auto", budget: float | str | None = None, seed: int = 0, arch: str | None = None,
             trust_pickle: bool = False, model_code: str | os.PathLike | None = None,
             model_kwargs: dict | str | None = None, name: str | None = None, clean_only: bool = False,
             batch_size: int = DEFAULT_BATCH, reference: str | os.PathLike | None = None, force: bool = False,
             data_root: str | os.PathLike | None = None, use_cache: bool = True,
             trained_on: str | Sequence[str] | None = None,
             attack: str | Sequence[str] | None = None, norm: str = "linf",
             attack_severity: str | Sequence[int] | int | None = None, restarts: int = 1,
             attack_n: int | None = None, attack_budget: float | None = None,
             predictions: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             formats: str | Sequence[str] = "json", resume: bool = False, overwrite: bool = False,
             progress: ProgressFn | None = None, log: Callable[[str], None] | None = print_log,
             warn: Callable[[str], None] | None = print_warning, spent_s: float = 0.0,
             selective_coverage: float = 0.95, conformal_alpha: float = 0.1) -> Result:
    """Evaluate ``model`` on clean MNIST test, a suite of shifts, OOD and real sets, attacks.

    ``model``: an ``nn.Module``, a path in any supported format, or a callable mapping an array
    N×28×28 (float 0-1; uint8 with ``preprocess="0-255"``) to N×10 scores; or None with
    ``predictions`` (scores computed elsewhere, one N×10 array per set from ``shifts export``).
    Every parameter means what the ``robustmnist eval`` flag of the same name means; with
    none of suite/shift the default suite runs (``clean_only=True``: no shifts; ``attack`` alone:
    attacks only). An ``nn.Module`` is put in eval mode and moved to ``device`` in place.
    Unless ``force`` or an explicit ``preprocess``, a clearly wrong input convention stops the
    run with the fix, and a doubtful one warns; ``preprocess="auto"`` applies the convention that
    check detects (recorded as ``summary["convention_detected"]``) and leaves a right one alone.
    ``trained_on`` (shift or family names) marks what the model saw in training: those records
    are ``seen`` and left out of the headline.

    ``out``: a folder to write results.json, predictions.npz and the reports in ``formats``
    (saved as the run goes; ``resume=True`` finishes the partial results an interrupted run
    left there; a folder holding another model's results is refused unless ``overwrite=True``).
    ``progress(kind, k, status)`` follows the run ("total" first); ``log`` and
    ``warn`` receive its lines (default: standard error); ``spent_s`` is time the caller already
    used, taken off ``budget``. ``selective_coverage`` (share of clean digits the confidence
    threshold accepts) and ``conformal_alpha`` fix every record's ``selective`` and ``conformal``.
    """
    from .models.device import resolve_device
    from .run.attack_plans import AttackOptions, make_plan
    from .run.budget import parse_budget
    from .run.collect import evaluate as run_one
    from .run.collect import scored_images
    from .run.outputs import OutputGuard, check_out, parse_formats, save_run
    from .run.prepare import check_request, prepare, resume_convention, split_auto
    from .run.prepare import finish as finish_result
    from .run.resume import PartialSaver, check_resumable, load_partial

    ood_names, real_names = as_list(ood), as_list(real)
    check_request(n, batch_size, ood_names, real_names)
    fmts = parse_formats(formats)
    if (model is None) == (predictions is None):
        raise UserError("give a model or `predictions=PREDS.npz` (one of the two)")
    if predictions is not None and (ood or real or attack):
        raise UserError("`ood=`, `real=` and `attack=` need a model to score their sets; leave them out "
                        "with `predictions=`")
    if resume and out is None:
        raise UserError("`resume=True` needs `out=`: the folder holding the interrupted run's results")
    if trained_on:
        from .run.seen import resolve

        resolve(None, as_list(trained_on))  # unknown names fail before the model is loaded
    attacks_only = attack and suite is None and shift is None  # attack alone: attacks, no shift suite
    the_suite = None if clean_only or attacks_only else build_suite(suite, shift, severity)
    budget_s = parse_budget(budget) if isinstance(budget, str) else budget
    out = Path(out) if out is not None else None
    if out is not None:  # before the model loads: a run must not score every set, then fail to save
        check_out(out, model_sha256=_identity(model if predictions is None else predictions),
                  overwrite=overwrite, resume=resume)
    dev = resolve_device(device)
    auto, preprocess = split_auto(preprocess)
    if predictions is not None:  # scores computed elsewhere: nothing to run, nothing to pre-check
        from .models.predictions import load_predictions

        loaded = load_predictions(predictions, preprocess)
    else:
        loaded = load_model(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                            model_code=model_code, model_kwargs=model_kwargs, name=name)
    loaded.to(dev)
    prior = load_partial(out) if resume else None
    carried = resume_convention(prior, loaded) if prior and auto else None  # auto's choice, kept
    prior_n = check_resumable(prior, loaded, the_suite, seed, n, ood_names) if prior else None
    # precomputed scores have no forward path to speed up, and their n is the exported sets' n:
    # no probe, no budget and no convention guard for them
    elsewhere = predictions is not None
    ready = prepare([loaded], the_suite, explicit=[bool(preprocess) or elsewhere or carried is not None],
                    data_root=data_root, n=n, real=real_names, ood_sets=len(ood_names or []),
                    budget=math.inf if elsewhere else budget_s, seed=seed, use_cache=use_cache,
                    batch_size=batch_size, force=force, warn=warn, resume_n=prior_n, spent_s=spent_s,
                    fast=not elsewhere, auto=[auto], log=log)
    if carried is not None:
        ready.checks[0] = carried
    run_plan, clean = ready.plan, ready.clean
    if log:
        log(run_plan.line())
    n_img = min(run_plan.n, len(clean.images))
    plan = None
    opts = AttackOptions(attack, norm, attack_severity, restarts, attack_n, attack_budget)
    if opts.wanted:  # attacks take their own budget, on the clean digits this run scores; with the
        plan = make_plan(loaded, opts, n_img, seed, log)  # model as loaded (gradients), never its fast path
    n_sets = len(the_suite.shift_names) * len(the_suite.severities) if the_suite else 0
    n_todo = n_sets - (len(prior.result.shifts) if prior else 0)
    if progress:
        n_attacked = plan.n * len(plan.eps) * len(plan.attacks) if plan else 0
        n_real = sum(len(rs.images) for rs in ready.real_sets or [])
        n_clean = n_img if elsewhere else len(clean.images)  # the clean record is every digit
        progress("total", n_clean + n_img * n_todo + scored_images(ood_names, run_plan.n) + n_real + n_attacked, "")

    def finish(result) -> None:
        finish_result(result, ready.checks[0], reference)

    saver = PartialSaver(lambda o: save_run(o, out), finish=finish) if out is not None else None
    with OutputGuard(out):
        try:
            run = run_one(ready.models[0], the_suite, n=run_plan.n, seed=seed, ood=ood_names, data_root=data_root,
                          batch_size=batch_size, use_cache=use_cache, name=name or loaded.name,
                          progress=progress, clean=clean, real_sets=ready.real_sets, attacks=plan,
                          on_update=saver, execution={**run_plan.to_dict(), "ood": list(ood_names or [])},
                          resume=[prior] if prior else None, trained_on=as_list(trained_on), fast=not elsewhere,
                          selective_coverage=selective_coverage, conformal_alpha=conformal_alpha)
        except KeyboardInterrupt:
            if saver is not None and saver.saves:
                raise RunInterrupted(f"interrupted after {saver.sets_saved} of {n_sets} sets: partial results in "
                                     f"{out / 'results.json'}; finish them with the same settings plus "
                                     "`resume=True`") from None
            raise
        finish(run.result)
        written = save_run(run, out, fmts) if out is not None else {}
    result = Result.from_run(run)
    result.written = written
    return result


def _identity(model: Any) -> str | None:
    """What results.json records as the model's sha256, where it is known before loading: a
    file's bytes, a module's weights; None for a callable (its results are never replaced unasked)."""
    from .fileio import sha256_file

    if isinstance(model, (str, os.PathLike)) and Path(model).is_file():
        try:
            return sha256_file(Path(model))
        except OSError:
            return None  # unreadable: loading it says so
    import torch

    if isinstance(model, torch.nn.Module):
        from .models.callable import module_sha256

        return module_sha256(model)
    return None


def load_set(shift: str, severity: int = 3, *, n: int | None = None, seed: int = 0, suite: Any = "default",
             data_root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shifted set an evaluation scores: (uint8 images N×28×28, int64 labels), byte for byte.

    ``shift="clean"`` gives the first ``n`` MNIST test digits. The severity ladder comes from
    ``suite`` (a name, a .toml path, or a Suite).
    """
    from .data.datasets import load_mnist
    from .shifts.sets import get_set, set_sha256
    from .shifts.suite import Suite, load_suite

    clean = load_mnist("test", data_root)
    if n is not None and n < 1:
        raise UserError(f"n must be at least 1, got {n}")
    images, labels = clean.images[:n], clean.labels[:n]
    if shift == "clean":
        return images.copy(), labels.astype(np.int64)
    the_suite = suite if isinstance(suite, Suite) else load_suite(str(suite))
    params = the_suite.params(shift, severity)
    sset = get_set(the_suite.shift(shift), severity, params, images, labels, len(images), seed,
                   source_sha=set_sha256(images, labels))
    return sset.images, sset.labels


def shifts(family: str | None = None) -> list:
    """The registered shifts (name, family, version, kind, description), in catalog order."""
    from .shifts.registry import FAMILIES, all_shifts

    if family is not None and family not in FAMILIES:
        raise UserError(f"unknown family '{family}'. Families: {', '.join(FAMILIES)}")
    return [s for s in all_shifts().values() if family is None or s.family == family]


def diagnose(model: Any, *, preprocess: str | None = None, arch: str | None = None, trust_pickle: bool = False,
             model_code: str | os.PathLike | None = None, model_kwargs: dict | str | None = None,
             data_root: str | os.PathLike | None = None):
    """``robustmnist doctor``: which input/output convention the model wants, and what is wrong."""
    from .doctor import diagnose as run_doctor
    from .doctor import load_for_diagnosis

    if isinstance(model, str | os.PathLike):
        loaded, declared = load_for_diagnosis(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                                              model_code=model_code, model_kwargs=model_kwargs)
        return run_doctor(loaded, data_root=data_root, declared=declared)
    loaded = load_model(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                        model_code=model_code, model_kwargs=model_kwargs)
    return run_doctor(loaded, data_root=data_root)


def predict(model: Any, images: Sequence, *, polarity: str = "auto", preprocess: str | None = None,
            arch: str | None = None, trust_pickle: bool = False, model_code: str | os.PathLike | None = None,
            model_kwargs: dict | str | None = None) -> list:
    """``robustmnist predict``: photo-frame each image (paths or arrays) and score it on its own:
    a list of ``run.predict.Prediction`` (prediction, probabilities, top3, doubtful, error)."""
    from .data.photo import POLARITIES
    from .run.predict import predict_images

    if polarity not in POLARITIES:
        raise UserError(f"polarity= must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    if isinstance(images, str | os.PathLike | np.ndarray):
        images = [images]
    loaded = load_model(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                        model_code=model_code, model_kwargs=model_kwargs)
    return predict_images(loaded, list(images), polarity)
