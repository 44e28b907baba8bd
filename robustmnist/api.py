"""The Python API: what a notebook needs, without the engine's internal types.

    import robustmnist
    result = robustmnist.evaluate(model, suite="quick", n=1000)   # nn.Module, path or callable
    result.to_pandas()          # the tidy table of results.csv
    result                      # in Jupyter: the report, inline
    result.save("out/")         # results.json, predictions.npz, report.html/.md, results.csv

Every function takes what the CLI takes, by the same names, and fails with the same
one-line ``UserError`` messages.
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .errors import UserError
from .models.load import LoadedModel

ALL_FORMATS = ("json", "html", "md", "csv")


class Result(results.Result):
    """``results.Result`` (the results.json schema) plus what a notebook does with it."""

    _per_image: dict[str, np.ndarray]

    @classmethod
    def from_run(cls, run) -> Result:
        r = cls(**{f.name: getattr(run.result, f.name) for f in dataclasses.fields(results.Result)})
        r._per_image = dict(run.predictions)
        return r

    def as_result(self) -> results.Result:
        return results.Result(**{f.name: getattr(self, f.name) for f in dataclasses.fields(results.Result)})

    def to_pandas(self):
        """The tidy table of results.csv: one row per (set, severity, class), as a DataFrame."""
        import pandas as pd

        from .report import view
        from .report.tidy import render_csv

        return pd.read_csv(io.StringIO(render_csv(view.make_models([self]))))

    def save(self, out: str | os.PathLike, formats: Sequence[str] | str = ALL_FORMATS) -> dict[str, Path]:
        """Write results.json, predictions.npz and the reports in ``formats`` into folder ``out``."""
        from .engine import RunOutput
        from .outputs import save_run

        fmts = {f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)}
        unknown = fmts - set(ALL_FORMATS)
        if unknown:
            raise UserError(f"unknown format(s) {', '.join(sorted(unknown))}; use {', '.join(ALL_FORMATS)}")
        base = self.as_result()
        written = save_run(RunOutput(base, getattr(self, "_per_image", {})), Path(out), fmts | {"json"})
        self.predictions = base.predictions
        return written

    def report(self, path: str | os.PathLike | None = None) -> str | Path:
        """The HTML report: its text, or written to ``path`` (a file) and the path returned."""
        from .fileio import atomic_write_text
        from .report import view
        from .report.render import render_html

        models = view.make_models([self])
        text = render_html(models, view.make_layout(models))
        if path is None:
            return text
        atomic_write_text(path, text)
        return Path(path)

    def _repr_html_(self) -> str:
        # The report is a whole page with its own CSS and CSP; an iframe keeps both from
        # leaking into (or being broken by) the notebook's page.
        doc = html.escape(self.report(), quote=True)
        return (f'<iframe srcdoc="{doc}" style="width:100%;height:760px;border:1px solid #ddd" '
                f'title="robustmnist report: {html.escape(self.model.name)}"></iframe>')

    def __repr__(self) -> str:
        s = self.summary
        parts = [f"clean {self.clean.accuracy:.2%}"]
        if "mean_shifted_accuracy" in s:
            parts.append(f"shifted mean {s['mean_shifted_accuracy']:.2%}")
            w = s["worst_shift"]
            parts.append(f"worst {w['name']}@{w['severity']} {w['accuracy']:.2%}")
        if "mce" in s:
            parts.append(f"mCE {s['mce']:.1%}")
        return f"<robustmnist.Result {self.model.name}: {', '.join(parts)}>"


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


def _as_list(value: str | int | Sequence | None) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, int):
        return [value]
    return list(value)


def build_suite(suite: Any = None, shift: str | Sequence[str] | None = None,
                severity: int | Sequence[int] | str | None = None):
    """The suite to run, as the CLI builds it: ``suite`` (default 'default') narrowed by shift/severity."""
    from .shifts.registry import FAMILIES, resolve_names
    from .shifts.suite import Suite, load_suite

    the_suite = suite if isinstance(suite, Suite) else load_suite(str(suite) if suite else "default")
    names = None
    if shift:
        names = []
        for item in _as_list(shift):  # suite-declared shifts are not in the registry
            in_family = [n for n, sh in the_suite.custom.items() if sh.family == item]
            if item in the_suite.custom:
                picked = [item]
            elif in_family and item not in FAMILIES:
                picked = in_family
            else:
                picked = resolve_names([item]) + in_family
            names += [n for n in picked if n not in names]
    levels = _as_list(severity)
    if levels is not None:
        try:
            levels = [int(v) for v in levels]
        except (TypeError, ValueError):
            raise UserError(f"severity must be whole numbers, got {severity!r}") from None
    return the_suite.restrict(names, levels)


def evaluate(model: Any, *, suite: Any = None, shift: str | Sequence[str] | None = None,
             severity: int | Sequence[int] | None = None, n: int | None = None,
             ood: str | Sequence[str] | None = None, real: Any = None, preprocess: str | None = None,
             device: str = "auto", budget: Any = None, seed: int = 0, arch: str | None = None,
             trust_pickle: bool = False, model_code: str | os.PathLike | None = None,
             model_kwargs: dict | str | None = None, name: str | None = None, clean_only: bool = False,
             batch_size: int = 512, reference: str | os.PathLike | None = None, force: bool = False,
             data_root: str | os.PathLike | None = None, use_cache: bool = True,
             trained_on: str | Sequence[str] | None = None) -> Result:
    """Evaluate ``model`` on clean MNIST test, a suite of shifts and OOD sets.

    ``model``: an ``nn.Module``, a path in any supported format, or a callable mapping an array
    N×28×28 (float 0-1; uint8 with ``preprocess="0-255"``) to N×10 scores. ``suite``, ``shift``,
    ``severity``, ``n``, ``ood``, ``real``, ``preprocess`` and ``device`` mean what the CLI flags mean;
    with none of suite/shift the default suite runs (``clean_only=True``: no shifts). An
    ``nn.Module`` is put in eval mode and moved to ``device``, as ``Module.to`` does, in place.
    Unless ``force`` or an explicit ``preprocess``, a clearly wrong input convention stops the run
    with the fix, and a doubtful one warns (as the CLI). ``trained_on`` (shift or family names, as
    ``--trained-on``) marks what the model saw in training: those records are ``seen`` and left
    out of the headline numbers.
    """
    import sys

    from .budget import parse_budget
    from .engine import evaluate as run_suite
    from .engine import resolve_device
    from .prepare import check_request, finish, prepare

    ood_names, real_names = _as_list(ood), _as_list(real)
    check_request(n, batch_size, ood_names, real_names, flags=False)
    if trained_on:
        from .seen import resolve

        resolve(None, _as_list(trained_on))  # unknown names fail before the model is loaded
    dev = resolve_device(device)
    loaded = load_model(model, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                        model_code=model_code, model_kwargs=model_kwargs, name=name).to(dev)
    the_suite = None if clean_only else build_suite(suite, shift, severity)
    # the same reads, convention guard and plan of n (time budget) as the CLI's eval
    ready = prepare([loaded], the_suite, explicit=[bool(preprocess)], data_root=data_root, n=n, real=real_names,
                    ood_sets=len(ood_names or []), budget=parse_budget(budget) if isinstance(budget, str) else budget,
                    seed=seed, use_cache=use_cache, batch_size=batch_size, force=force,
                    warn=lambda text: print(f"robustmnist: warning: {text}", file=sys.stderr), api=True)
    print(ready.plan.line(), file=sys.stderr)
    run = run_suite(ready.models[0], the_suite, n=ready.plan.n, seed=seed, ood=ood_names, data_root=data_root,
                    batch_size=batch_size, use_cache=use_cache, name=name or loaded.name, real_sets=ready.real_sets,
                    clean=ready.clean, execution={**ready.plan.to_dict(), "ood": list(ood_names or [])},
                    trained_on=_as_list(trained_on))
    finish(run.result, ready.checks[0], reference)
    return Result.from_run(run)


def load_set(shift: str, severity: int = 3, *, n: int | None = None, seed: int = 0, suite: Any = "default",
             data_root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shifted set an evaluation scores: (uint8 images N×28×28, int64 labels), byte for byte.

    ``shift="clean"`` gives the first ``n`` MNIST test digits. The severity ladder comes from
    ``suite`` (a name, a .toml path, or a Suite).
    """
    from .data import load_mnist
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
