"""Run a suite: (cached) generate -> score -> metrics, streaming one set at a time.

Only per-image predictions (1 byte each) outlive a set, so memory stays flat however large
the suite is. Generation is on CPU with explicit generators (byte-identical sets anywhere);
scoring runs on any device.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch

from . import __version__
from .data import DigitSet, load_mnist
from .errors import UserError
from .metrics import classification_metrics, edited_digit_metrics, flip_rate
from .models.fastpath import accelerate, as_loaded
from .models.fastpath import forward as fast_forward
from .models.load import LoadedModel
from .ood import evaluate_ood
from .report.images import png_b64
from .results import Environment, ModelInfo, Result, SetMetrics, ShiftRecord
from .seen import SeenInTraining
from .seen import resolve as seen_in_training
from .shifts.euro import EDITED_DIGITS
from .shifts.fingerprint import chunk_digests
from .shifts.pipeline import SetPipeline, SetRequest
from .shifts.sets import set_sha256
from .shifts.suite import Suite

# 512, not larger: on a 2-core x86 CPU lenet5 scores ~60k images/s at 512 but ~35k at 1024
# (its conv activations fall out of cache); MLPs lose under 10% (benchmarks/score.json). CUDA
# callers may pass more, and the scorer halves the batch on out-of-memory anyway.
DEFAULT_BATCH = 512
GALLERY_MISCLASSIFIED = 8

# progress(kind, advance_images, status_text); kind is "score" or "set"
ProgressFn = Callable[[str, int, str], None]
# on_update(outputs so far, every one marked partial): called after clean and after each set
UpdateFn = Callable[[list["RunOutput"]], None]


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device 'mps' requested but MPS is not available; use --device cpu")
    return torch.device(name)


def _forward(model: LoadedModel, xb_u8: torch.Tensor) -> torch.Tensor:
    return fast_forward(model.module, model.preprocess, xb_u8)


def score(
    model: LoadedModel,
    images: np.ndarray,
    batch_size: int = DEFAULT_BATCH,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """uint8 N×28×28 -> float32 N×10 logits (softmax(logits) = the model's probabilities)."""
    device = model.device
    n = len(images)
    out = np.empty((n, 10), dtype=np.float32)
    src = torch.from_numpy(np.ascontiguousarray(images))
    on_cuda = device.type == "cuda"
    if on_cuda:
        src = src.pin_memory()  # lets the copy overlap with compute (non_blocking)
    start = 0
    bs = max(1, batch_size)
    with torch.inference_mode():
        while start < n:
            stop = min(n, start + bs)
            try:
                xb = src[start:stop].to(device, non_blocking=on_cuda)
                logits = _forward(model, xb)
            except torch.cuda.OutOfMemoryError:
                if bs == 1:
                    raise UserError("CUDA ran out of memory even at batch size 1") from None
                torch.cuda.empty_cache()
                bs = max(1, bs // 2)  # back off and retry the same slice
                continue
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's model can raise anything
                raise UserError(f"the model failed on a batch: {str(exc).splitlines()[0]}") from None
            if logits.dim() != 2 or logits.shape[1] != 10 or logits.shape[0] != stop - start:
                raise UserError(f"the model returned shape {tuple(logits.shape)}; expected N×10")
            out[start:stop] = logits.float().cpu().numpy()
            if progress:
                progress("score", stop - start, "")
            start = stop
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise UserError(
            f"the model produced NaN or inf outputs for {bad} of {n} images; check its weights "
            "and the --preprocess input range (robustmnist doctor MODEL can help)"
        )
    return out


def score_named(model: LoadedModel, key: str | None, images: np.ndarray, batch_size: int = DEFAULT_BATCH,
                progress: ProgressFn | None = None) -> np.ndarray:
    """``score`` for the set named ``key``; scores computed elsewhere are looked up by that name."""
    lookup = getattr(model.module, "scores_for", None)
    if lookup is None or key is None:
        return score(model, images, batch_size, progress)
    out = lookup(key, len(images))  # eval --predictions (models/predictions.py)
    if progress:
        progress("score", len(images), "")
    return out


# -- galleries: tiny PNGs inside results.json so the report never needs the set cache ----------

def sample_indices(labels: np.ndarray) -> list[int]:
    """The first digit of each class (0..9): the same columns in every gallery strip."""
    idx = []
    for k in range(10):
        hits = np.flatnonzero(labels == k)
        if len(hits):
            idx.append(int(hits[0]))
    return idx


def gallery(images: np.ndarray, labels: np.ndarray, logits: np.ndarray, indices: list[int]) -> dict:
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    preds = probs.argmax(axis=1)
    strip = np.concatenate([images[i] for i in indices], axis=1) if indices else np.zeros((28, 28))
    wrong = np.flatnonzero((preds != labels) & (labels >= 0))[:GALLERY_MISCLASSIFIED]
    return {
        "samples_png": png_b64(strip),
        "sample_indices": [int(i) for i in indices],
        "misclassified": [
            {"index": int(i), "true": int(labels[i]), "pred": int(preds[i]),
             "confidence": float(probs[i].max()), "png": png_b64(images[i])}
            for i in wrong
        ],
    }


# -- the run -------------------------------------------------------------------------------------

@dataclass
class RunOutput:
    result: Result
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # set id -> int8 preds


def environment(device: torch.device) -> Environment:
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return Environment(
        python=platform.python_version(), torch=str(torch.__version__), device=str(device),
        torchvision=str(torchvision.__version__), robustmnist=__version__,
        platform=platform.platform(), threads=torch.get_num_threads(), device_name=name or "",
    )


def model_info(model: LoadedModel, name: str | None = None) -> ModelInfo:
    return ModelInfo(
        path=model.path, sha256=model.sha256, format=model.format,
        preprocess=model.preprocess.to_string(), preprocess_spec=model.preprocess.to_dict(),
        name=name or model.name, arch=model.arch, n_params=model.n_params, metadata=model.metadata,
    )


def set_id(name: str, severity: int) -> str:
    return f"{name}@{severity}"


def evaluate(model: LoadedModel, suite: Suite | None, **kwargs) -> RunOutput:
    """Evaluate one model; see ``evaluate_many``."""
    names = kwargs.pop("name", None)
    return evaluate_many([model], suite, names=[names] if names else None, **kwargs)[0]


@dataclass
class SetScore:
    """One model scored on one set: the unit of work of local bench and of its Ray tasks alike,
    so both produce the same records by construction."""

    metrics: dict  # classification_metrics + gallery
    preds: np.ndarray  # int8 N, the argmax
    logits: np.ndarray | None  # float32 N×10, kept for clean only (OOD scores compare against it)
    score_s: float
    metrics_s: float


def score_set(model: LoadedModel, images: np.ndarray, labels: np.ndarray, indices: list[int] | None = None,
              batch_size: int = DEFAULT_BATCH, progress: ProgressFn | None = None,
              keep_logits: bool = False, key: str | None = None) -> SetScore:
    t = time.perf_counter()
    logits = score_named(model, key, images, batch_size, progress)  # key: the set's name (eval --predictions)
    score_s = time.perf_counter() - t
    t = time.perf_counter()
    m = classification_metrics(labels, logits)
    m["gallery"] = gallery(images, labels, logits, sample_indices(labels) if indices is None else indices)
    preds = logits.argmax(axis=1).astype(np.int8)
    return SetScore(m, preds, logits if keep_logits else None, score_s, time.perf_counter() - t)


def _declared(models: list, trained_on, trained_on_each) -> list:
    """What each model is declared to have been trained on (bench: MODEL::trained-on=...)."""
    if trained_on_each is None:
        return [trained_on] * len(models)
    if len(trained_on_each) != len(models):
        raise ValueError(f"trained_on_each has {len(trained_on_each)} entries for {len(models)} models")
    return list(trained_on_each)


class _ModelRun:
    """What one model accumulates while the sets stream past."""

    def __init__(self, model: LoadedModel, shared: bool = False,
                 trained_on: str | list[str] | None = None):
        self.model = model
        self.shared = shared  # one of several models scored on the same sets
        self.prior_total = 0.0  # seconds an interrupted run spent before --resume
        self.resumed = 0  # sets taken from that run
        # families seen in training: the checkpoint's record plus --trained-on (seen.py)
        self.seen = seen_in_training(model.metadata, trained_on)
        self.records: list[ShiftRecord] = []
        self.predictions: dict[str, np.ndarray] = {}
        self.timings = {"load_data": 0.0, "generate": 0.0, "score": 0.0, "metrics": 0.0}
        self.clean_m: dict = {}
        self.clean_logits: np.ndarray | None = None
        self.clean_preds: np.ndarray | None = None

    def add_clean(self, unit: SetScore, labels: np.ndarray) -> None:
        self.timings["score"] += unit.score_s
        self.timings["metrics"] += unit.metrics_s
        self.clean_logits = unit.logits
        self.clean_m = unit.metrics
        self.clean_preds = unit.preds
        self.predictions = {"clean": unit.preds, "labels": labels.astype(np.int8)}

    def add_shift(self, unit: SetScore, shift, severity: int, params: dict, sha256: str, cached: bool,
                  labels: np.ndarray, chunks: list[str] | None = None) -> None:
        """``labels`` are only stored for generated sets (a transformed set has clean's labels)."""
        paired = shift.kind != "generative"
        self.timings["score"] += unit.score_s
        self.timings["metrics"] += unit.metrics_s
        self.records.append(ShiftRecord(
            **unit.metrics, name=shift.name, family=shift.family, severity=severity, version=shift.version,
            sha256=sha256, params=params, cached=cached, chunks=chunks or [],
            flip_rate=flip_rate(unit.preds, self.clean_preds) if paired else None,
            edited=edited_digit_metrics(labels, unit.preds, EDITED_DIGITS[shift.name])
            if shift.name in EDITED_DIGITS else None,
            seen=self.seen.covers(shift.family),
        ))
        self.predictions[set_id(shift.name, severity)] = unit.preds
        if not paired:
            self.predictions[set_id(shift.name, severity) + ":labels"] = labels.astype(np.int8)

    def finish(self, name: str | None, suite: Suite | None, n_clean: int, seed: int, ood_records: list,
               env: Environment | None = None, real_records: list | None = None,
               adversarial=None) -> RunOutput:
        result = Result(
            model=model_info(self.model, name),
            environment=env or environment(self.model.device),
            clean=SetMetrics(**self.clean_m),
            suite=_suite_info(suite, n_clean),
            seed=seed,
            shifts=self.records,
            ood=ood_records,
            real=real_records or [],
            summary=summarise(self.clean_m["accuracy"], self.records, ood_records, real_records or [],
                              adversarial, seen=self.seen),
            adversarial=adversarial,
            timings={k: round(v, 4) for k, v in self.timings.items()},
            conventions=CONVENTIONS,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return RunOutput(result, self.predictions)


def clean_and_source(clean: DigitSet | None, n: int | None, data_root) -> tuple[DigitSet, DigitSet]:
    """(the first ``n`` clean digits, scored; the whole clean set, the source of shifted sets).

    Whole, because nested sets read chunk k's digits by position, whatever n is."""
    source = clean or load_mnist("test", data_root)
    if n is None:
        return source, source
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    return DigitSet(source.images[:n], source.labels[:n], source.name), source


def evaluate_many(
    models: list[LoadedModel],
    suite: Suite | None,
    *,
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
    ray: str | None = None,
    fast: bool = True,
    execution: dict | None = None,
    on_update: UpdateFn | None = None,
    resume: list[RunOutput | None] | None = None,
    trained_on: str | list[str] | None = None,
    trained_on_each: list[str | None] | None = None,
) -> list[RunOutput]:
    """Score every model on clean MNIST, each (shift, severity) set, each OOD set and each real
    set (``real``: names as real.load_real takes them; ``real_sets``: real.RealSet in memory).

    Sets are the outer loop: each is generated (or read from the cache) once and scored by
    every model before the next one, so a leaderboard of k models costs one generation pass.
    ``attacks`` (an ``attacks.evaluate.AttackPlan``, or one per model) adds the adversarial section.
    ``ray="auto"`` (or "local", "HOST:PORT") runs the same plan as tasks on a Ray cluster.
    ``fast`` runs each model on its fastest exact forward path (models/fastpath.py; attacks,
    which need gradients, get the model as loaded); ``execution`` (n, budget, reason: see
    budget.py) goes into every result as it is; ``on_update`` sees partial results as sets
    finish (to save them as the run goes) and ``resume`` (one earlier partial output per
    model) skips the sets it already holds. (The Ray path takes neither of these two yet.)

    Records of families a model saw in training (its checkpoint's record, plus ``trained_on``
    shift/family names for every model, or ``trained_on_each``: one entry per model) are marked
    ``seen`` and left out of the headline.
    """
    if ray is not None:  # imported here: a local run never loads Ray (an optional extra)
        from .distributed import ray as on_ray

        return on_ray.evaluate_many(models, suite, address=ray, n=n, seed=seed, ood=ood, data_root=data_root,
                                    batch_size=batch_size, use_cache=use_cache, names=names,
                                    progress=progress, clean=clean, real=real, real_sets=real_sets,
                                    attacks=attacks, fast=fast, execution=execution, trained_on=trained_on,
                                    trained_on_each=trained_on_each)
    t_start = time.perf_counter()
    t = time.perf_counter()
    clean, source = clean_and_source(clean, n, data_root)
    n_clean = len(clean.images)
    source_sha = set_sha256(source.images, source.labels)
    load_s = time.perf_counter() - t
    indices = sample_indices(clean.labels)
    loaded = [as_loaded(m) for m in models]  # gradient-based attacks need the torch module itself
    if fast:
        models = [accelerate(m, clean.images, batch_size) for m in models]
    # unknown --trained-on fails before any work
    runs = [_ModelRun(m, shared=len(models) > 1, trained_on=t)
            for m, t in zip(models, _declared(models, trained_on, trained_on_each), strict=True)]
    priors = _resumed(runs, resume)

    def update() -> None:
        if on_update:
            on_update([_output(run, i, names, suite, n_clean, seed, [], t_start, execution, True)
                       for i, run in enumerate(runs)])

    for run in runs:
        run.timings["load_data"] = load_s
        run.add_clean(score_set(run.model, clean.images, clean.labels, indices, batch_size, progress,
                                keep_logits=True, key="clean"), clean.labels)
    update()

    plan = [(nm, s) for nm in (suite.shift_names if suite else []) for s in suite.severities]
    todo = []  # (shift, severity, params) of the sets to score: the plan less what a resume holds
    for shift_name, sev in plan:
        shift = suite.shift(shift_name)
        params = suite.params(shift_name, sev)
        held = [_prior_record(p, shift, sev, params) for p in priors]
        if priors and all(h is not None for h in held):
            for run, prior, record in zip(runs, priors, held, strict=True):
                _take_prior(run, prior, record)
            continue
        todo.append(SetRequest(shift, sev, params))
    # the next sets are generated in worker processes while this one is scored (pipeline.py)
    with SetPipeline(todo, source.images, source.labels, n_clean, seed, source_sha=source_sha,
                     use_cache=use_cache) as sets_ahead:
        for i, req in enumerate(todo):
            shift, sev, params = req.shift, req.severity, req.params
            if progress:
                progress("set", 0, f"{shift.name} s{sev}")
            t = time.perf_counter()
            sset = sets_ahead.get(i)
            gen_s = time.perf_counter() - t
            paired = shift.kind != "generative"
            chunks = sset.chunks or chunk_digests(sset.images, sset.labels)
            idx = indices if paired else sample_indices(sset.labels)
            for run in runs:
                run.timings["generate"] += gen_s / len(runs)
                run.add_shift(score_set(run.model, sset.images, sset.labels, idx, batch_size, progress,
                                        key=set_id(shift.name, sev)),
                              shift, sev, params, sset.sha256, sset.cached, sset.labels, chunks)
            if progress:
                progress("set", 1, f"{shift.name} s{sev}")
            update()

    real_records: list[list] = [[] for _ in runs]
    if real or real_sets:
        from .real_metrics import evaluate_real  # real sets and their records live there

        t = time.perf_counter()
        real_records = evaluate_real(
            real or [], [lambda imgs, m=run.model: score(m, imgs, batch_size, progress) for run in runs],
            [run.clean_m for run in runs], [run.records for run in runs], data_root=data_root, n=n,
            sets=real_sets)
        for run in runs:
            run.timings["real"] = (time.perf_counter() - t) / len(runs)

    outputs = []
    for i, run in enumerate(runs):
        ood_records = []
        if ood:
            t = time.perf_counter()
            ood_records = evaluate_ood(
                ood, run.clean_logits, lambda imgs, m=run.model: score(m, imgs, batch_size, progress),
                data_root=data_root, seed=seed, n=n, output=run.model.preprocess.output,
            )
            run.timings["ood"] = time.perf_counter() - t
        adversarial = None
        plan = attacks[i] if isinstance(attacks, list) else attacks  # one plan, or one per model
        if plan is not None:
            from .attacks.evaluate import evaluate_attacks  # the attacks package owns adversarial metrics

            t = time.perf_counter()
            adversarial = evaluate_attacks(loaded[i], clean.images, clean.labels, plan, progress)
            run.timings["attack"] = time.perf_counter() - t
        outputs.append(_output(run, i, names, suite, n_clean, seed, ood_records, t_start, execution, False,
                               real_records[i], adversarial))
    return outputs


def _output(run: _ModelRun, i: int, names, suite, n_clean: int, seed: int, ood_records: list,
            t_start: float, execution: dict | None, partial: bool, real_records: list | None = None,
            adversarial=None) -> RunOutput:
    timings = dict(run.timings)
    # several models share the wall clock, so each one's total is the sum of its own stages
    # (which already hold a resumed run's earlier stages); one model's is the wall clock
    timings["total"] = sum(timings.values()) if run.shared else \
        run.prior_total + time.perf_counter() - t_start
    out = run.finish(names[i] if names else None, suite, n_clean, seed, ood_records,
                     real_records=real_records, adversarial=adversarial)
    info = dict(execution or {})
    if run.model.forward_path is not None:
        info["forward_path"] = run.model.forward_path.to_dict()
    if run.resumed:
        info["resumed_sets"] = run.resumed
    out.result.timings = {k: round(v, 4) for k, v in timings.items()}
    out.result.shifts = list(run.records)  # a snapshot: a partial output must not grow later
    out.result.execution = info
    out.result.partial = partial
    return RunOutput(out.result, dict(run.predictions))


def _resumed(runs: list[_ModelRun], resume: list[RunOutput | None] | None) -> list[RunOutput]:
    """The earlier outputs to take finished sets from (all models need one, or none is used)."""
    if not resume or any(p is None for p in resume):
        return []
    if len(resume) != len(runs):
        raise ValueError("resume needs one earlier output per model")
    for run, prior in zip(runs, resume, strict=True):
        run.prior_total = float(prior.result.timings.get("total", 0.0))
        for k, v in prior.result.timings.items():
            if k != "total" and isinstance(v, int | float):
                run.timings[k] = run.timings.get(k, 0.0) + v
    return list(resume)


def _prior_record(prior: RunOutput, shift, severity: int, params: dict) -> ShiftRecord | None:
    """The earlier record of this very set (same shift version and level parameters), if any."""
    for r in prior.result.shifts:
        if (r.name, r.severity) == (shift.name, severity) and r.version == shift.version \
                and r.params == params and set_id(r.name, r.severity) in prior.predictions:
            return r
    return None


def _take_prior(run: _ModelRun, prior: RunOutput, record: ShiftRecord) -> None:
    sid = set_id(record.name, record.severity)
    run.records.append(record)
    run.predictions[sid] = prior.predictions[sid]
    if sid + ":labels" in prior.predictions:
        run.predictions[sid + ":labels"] = prior.predictions[sid + ":labels"]
    run.resumed += 1


CONVENTIONS = {
    "accuracy_ci": "95% Wilson score interval",
    "ece": "top-label, 15 equal-width bins, L1 (Guo et al. 2017)",
    "brier": "mean over samples of sum_k (p_k - y_k)^2, range [0, 2]",
    "nll": "mean -log p(true class)",
    "flip_rate": "fraction of images whose prediction differs from the same clean image's",
    "fpr95": "Hendrycks & Gimpel: MNIST test is the positive class; fraction of OOD images "
             "accepted at the threshold that accepts 95% of MNIST test images",
}


def _suite_info(suite: Suite | None, n: int) -> dict:
    if suite is None:
        return {"name": None, "n": n}
    return {"name": suite.name, "source": os.path.basename(suite.source), "levels": suite.levels,
            "severities": list(suite.severities), "shifts": suite.shift_names, "n": n}


def summarise(clean_acc: float, records: list[ShiftRecord], ood_records: list, real_records=(),
              adversarial=None, seen: SeenInTraining | None = None) -> dict:
    """Headline numbers over the shifts not seen in training; the seen ones apart."""
    summary: dict = {"clean_accuracy": clean_acc}
    seen_records = [r for r in records if r.seen]
    if seen or seen_records:
        summary["seen_in_training"] = {
            **(seen or SeenInTraining()).to_dict(),
            "n_sets": len(seen_records),
            "mean_accuracy": float(np.mean([r.accuracy for r in seen_records]))
            if seen_records else None,
        }
    all_records, records = records, [r for r in records if not r.seen]
    if all_records:
        fam: dict[str, list[float]] = {}
        for r in all_records:  # a breakdown, so seen families too (marked in seen_in_training)
            fam.setdefault(r.family, []).append(r.accuracy)
        summary["per_family"] = {k: float(np.mean(v)) for k, v in fam.items()}
    if records:
        accs = [r.accuracy for r in records]
        worst = min(records, key=lambda r: r.accuracy)
        sev: dict[int, list[float]] = {}
        for r in records:
            sev.setdefault(r.severity, []).append(r.accuracy)
        summary.update(
            mean_shifted_accuracy=float(np.mean(accs)),
            mean_error=float(1 - np.mean(accs)),
            worst_shift={"name": worst.name, "severity": worst.severity, "accuracy": worst.accuracy},
            per_severity={str(k): float(np.mean(v)) for k, v in sorted(sev.items())},
        )
    if ood_records:
        summary["ood_mean_auroc"] = float(np.mean([o.scores["msp"]["auroc"] for o in ood_records]))
    if real_records:
        summary["real"] = {r.name: {"accuracy": r.accuracy, "closest_shift": (r.closest_shifts or [{}])[0].get("name")}
                           for r in real_records}
    if adversarial is not None and adversarial.records:
        last = adversarial.records[-1]  # the largest radius: the threat model's headline number
        summary["robust_accuracy"] = {"accuracy": last.robust_accuracy, "norm": adversarial.norm,
                                      "eps": last.eps, "attacks": list(adversarial.attacks), "n": last.n}
    return summary
