"""``robustmnist.bench``: several models on the same sets (each generated once), ranked."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api_common import Result, as_list, build_suite, print_log, print_warning
from .run.scoring import DEFAULT_BATCH, ProgressFn


@dataclass
class BenchResult:
    """``robustmnist.bench``: every model's Result, the leaderboard and what it was ranked against."""

    results: list[Result]
    leaderboard: list  # metrics.leaderboard.LeaderRow, ranked
    suite: str
    n: int  # images per set
    seed: int
    reference: dict  # the mCE reference: name, sha256 (and "first": the extra column's model)
    real_correlation: list[dict] | None = None  # per real set: which families predict it
    written: dict[str, Path] = field(default_factory=dict)
    ray: Any = None  # run.ray.Stats of a run on Ray

    def __repr__(self) -> str:
        rows = ", ".join(f"{r.rank}. {r.name} {r.mean_shifted_accuracy:.2%}" for r in self.leaderboard)
        return f"<robustmnist.BenchResult suite {self.suite}, {self.n} images/set: {rows}>"


def bench(models: Sequence[Any], *, suite: Any = "default", shift: str | Sequence[str] | None = None,
          severity: int | Sequence[int] | str | None = None, n: int | None = None,
          budget: float | str | None = None, ood: str | Sequence[str] | None = None, real: Any = None,
          reference: str | os.PathLike | None = None, seed: int = 0, device: str = "auto",
          batch_size: int = DEFAULT_BATCH, arch: str | None = None, preprocess: str | None = None,
          force: bool = False, use_cache: bool = True, data_root: str | os.PathLike | None = None,
          ray: str | None = None, attack: str | Sequence[str] | None = None, norm: str = "linf",
          attack_severity: str | Sequence[int] | int | None = None, restarts: int = 1,
          attack_n: int | None = None, attack_budget: float | None = None,
          trained_on: str | Sequence[str] | None = None, out: str | os.PathLike | None = None,
          formats: str | Sequence[str] = "json,md", overwrite: bool = False, progress: ProgressFn | None = None,
          log: Callable[[str], None] | None = print_log, warn: Callable[[str], None] | None = print_warning,
          spent_s: float = 0.0) -> BenchResult:
    """Evaluate several models on the same sets (each generated once) and rank them.

    ``models``: model files, globs ('sweep/*.pt') or '@list.txt' files; ``'net.pt::range=norm'``
    sets one model's convention and ``'net.pt::trained-on=fonts'`` what it was trained on
    (as ``robustmnist bench`` takes them). Every other parameter means what ``evaluate``'s (and
    the bench flag's of the same name) does; ``ray``: "auto", "local" or "HOST:PORT" runs the grid
    on a Ray cluster, with the same results. ``out``: per-model outputs in ``formats`` in
    ``out/<model>/`` and the leaderboard (html, md, csv) in ``out``; a model folder holding
    another model's results is refused unless ``overwrite=True``.
    """
    from .metrics.leaderboard import leaderboard
    from .metrics.real import family_rank_correlation
    from .metrics.reference import load_reference, reference_from_result, reference_info
    from .models.device import resolve_device
    from .models.load import load_model as load_file
    from .run.attack_plans import AttackOptions, same_prefix
    from .run.budget import parse_budget
    from .run.collect import evaluate_many, scored_images
    from .run.model_args import model_specs, unique_names
    from .run.outputs import check_not_another, check_writable, parse_formats, save_run
    from .run.prepare import check_request, prepare, split_auto
    from .run.prepare import finish as finish_result

    ood_names, real_names = as_list(ood), as_list(real)
    check_request(n, batch_size, ood_names, real_names)
    fmts = parse_formats(formats)
    specs = model_specs([str(m) for m in models], ray, preprocess, ",".join(as_list(trained_on) or []) or None)
    the_suite = build_suite(suite, shift, severity)
    dev = resolve_device("cpu" if ray else device)  # on Ray, the workers pick theirs
    if out is not None:
        check_writable(Path(out))  # before any model loads
    autos = [split_auto(spec) for _, spec, _ in specs]  # MODEL::auto or preprocess="auto": the guard chooses
    loaded = [load_file(p, arch=arch, preprocess=spec).to(dev)
              for (p, _, _), (_, spec) in zip(specs, autos, strict=True)]
    names = unique_names([m.name for m in loaded])
    if out is not None and not overwrite:  # before any set is scored
        for name, m in zip(names, loaded, strict=True):
            check_not_another(Path(out) / name, m.sha256)
    # An explicit convention (preprocess or ::SPEC) is the user's call: no guard for it.
    ready = prepare(loaded, the_suite, explicit=[bool(spec) for _, spec in autos], data_root=data_root, n=n,
                    real=real_names, ood_sets=len(ood_names or []),
                    budget=parse_budget(budget) if isinstance(budget, str) else budget, seed=seed,
                    use_cache=use_cache, batch_size=batch_size, force=force, warn=warn, spent_s=spent_s,
                    auto=[a for a, _ in autos], log=log)
    plan, clean = ready.plan, ready.clean
    if log:
        log(plan.line())
    n_img = min(plan.n, len(clean.images))
    n_sets = len(the_suite.shift_names) * len(the_suite.severities)
    plans = None
    opts = AttackOptions(attack, norm, attack_severity, restarts, attack_n, attack_budget)
    if opts.wanted:
        from .models.fastpath import as_loaded

        # attacks need gradients: the models as loaded, not their fast paths
        plans = same_prefix([as_loaded(m) for m in ready.models], opts, n_img, seed, log)
    if progress:
        n_real = sum(len(rs.images) for rs in ready.real_sets or [])
        progress("total", len(loaded) * (len(clean.images) + n_img * n_sets + scored_images(ood_names, plan.n)
                                         + n_real), "")
    executor, stats = None, None
    if ray:  # the same plan and results, as Ray tasks (workers follow the probed paths)
        from .run.ray import RayExecutor, Stats

        stats = Stats()
        executor = RayExecutor(ray, device, stats)
    runs = evaluate_many(ready.models, the_suite, executor=executor, n=plan.n, seed=seed, ood=ood_names,
                         data_root=data_root, batch_size=batch_size, use_cache=use_cache, names=names,
                         progress=progress, clean=clean, real_sets=ready.real_sets, attacks=plans,
                         trained_on_each=[t for _, _, t in specs], execution=plan.to_dict())
    # One mCE reference everywhere (the pinned lenet5, as eval uses); the first model only
    # gives an extra, separately labelled column.
    ref = load_reference(reference)
    first = reference_from_result(runs[0].result, predictions=runs[0].predictions) if len(runs) > 1 else None
    written: dict[str, Path] = {}
    for name, run, check in zip(names, runs, ready.checks, strict=True):
        finish_result(run.result, check, ref)
        if out is not None:
            save_run(run, Path(out) / name, fmts)
    rows = leaderboard([r.result for r in runs], ref, relative_to=first)
    ref_info = reference_info(ref)  # name and sha256, and what mce_note says the reference is
    if first is not None:
        ref_info["first"] = {"name": names[0], "sha256": first.sha256}
    real_corr = family_rank_correlation([r.result for r in runs]) if real_names else None
    if out is not None:
        from .report.leaderboard import write_leaderboard

        written = write_leaderboard(rows, Path(out), the_suite.name, n_img, seed, ref_info, real_corr)
    return BenchResult([Result.from_run(r) for r in runs], rows, the_suite.name, n_img, seed, ref_info, real_corr,
                       written, stats)
