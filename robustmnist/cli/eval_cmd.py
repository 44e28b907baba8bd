"""``robustmnist eval``: score a model on clean MNIST, a suite of shifts and OOD sets."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from ..errors import UserError
from ..prepare import check_request
from . import model_opts
from .attack_opts import AttackOptions, print_adversarial
from .common import STARTED, console, out, parse_int_list, parse_name_list, progress, warn

FORMATS = ("json", "html", "md", "csv")


def parse_formats(text: str) -> set[str]:
    fmts = {f.strip().lower() for f in text.split(",") if f.strip()}
    bad = fmts - set(FORMATS)
    if bad:
        raise UserError(f"unknown format(s) {', '.join(sorted(bad))}; use {', '.join(FORMATS)}")
    return fmts | {"json"}  # results.json is always written: every report is rebuilt from it


def build_suite(suite_name: str | None, shift: str | None, severity: str | None):
    """The suite to run: --suite (default 'default'), narrowed by --shift and --severity."""
    from ..api import build_suite as build  # the Python API builds it the same way

    return build(suite_name, shift, parse_int_list(severity, "--severity"))


def run_eval(
    model_path: Path, out: Path, *, suite=None, n=None, seed=0, ood=None, device="auto",
    batch_size=512, preprocess=None, arch=None, trust_pickle=False, formats=("json",),
    use_cache=True, data_root=None, name=None, force=False, reference=None, quiet=False, real=None,
    attack=None, budget=None, resume=False, spent_s=0.0, model_code=None, model_kwargs=None,
    predictions=None, trained_on=None,
):
    """Load, (doctor pre-check), plan n, evaluate while saving, write results (+ reports).

    ``budget``: seconds (inf = none) or None for the default (budget.py); ``resume`` finishes
    the partial results an interrupted run left in ``out``; ``spent_s``: seconds the command
    used before this call, taken off the budget.
    """
    from ..engine import evaluate, resolve_device
    from ..models.load import load_model
    from ..prepare import finish as finish_result
    from ..prepare import prepare
    from ..resume import PartialSaver, check_resumable, load_partial

    dev = resolve_device(device)
    if predictions is not None:  # scores computed elsewhere: nothing to run, nothing to pre-check
        from ..models.predictions import load_predictions

        model = load_predictions(predictions, preprocess)
    else:
        model = load_model(model_path, arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                           model_code=model_code, model_kwargs=model_kwargs)
    model.to(dev)
    prior = load_partial(out) if resume else None
    prior_n = check_resumable(prior, model, suite, seed, n, ood) if prior else None
    # precomputed scores (--predictions) have no forward path to speed up, and their n is the
    # exported sets' n: no probe, no budget and no convention guard for them
    scored_elsewhere = predictions is not None
    ready = prepare([model], suite, explicit=[bool(preprocess) or scored_elsewhere], data_root=data_root, n=n,
                    real=real, ood_sets=len(ood or []), budget=float("inf") if scored_elsewhere else budget, seed=seed,
                    use_cache=use_cache, batch_size=batch_size, force=force, warn=None if quiet else warn,
                    resume_n=prior_n, spent_s=spent_s,
                    fast=not scored_elsewhere)
    models, run_plan, clean, real_sets, (check,) = (ready.models, ready.plan, ready.clean, ready.real_sets,
                                                    ready.checks)
    if not quiet:
        console.print(run_plan.line(), markup=False, highlight=False)
    plan = None
    if attack is not None and attack.wanted:
        from .attack_opts import make_plan

        # attacks take their own budget, on the clean digits this run scores; with the model as
        # loaded (gradients), never its fast path
        plan = make_plan(model, attack, min(run_plan.n, len(clean.images)), seed)
    n_sets = len(suite.shift_names) * len(suite.severities) if suite else 0
    n_todo = n_sets - (len(prior.result.shifts) if prior else 0)

    def finish(result) -> None:
        finish_result(result, check, reference)

    saver = PartialSaver(lambda o: save_run(o, out), finish=finish)
    out_existed = out.exists()
    created = [p for p in (out / "results.json", out / "predictions.npz") if not p.exists()]
    try:
        with progress(quiet=quiet) as bar:
            task = bar.add_task("scoring", total=None, status="")

            def on_progress(kind: str, k: int, status: str) -> None:
                if kind in ("score", "attack"):
                    bar.update(task, advance=k, **({"status": status} if status else {}))
                elif status:
                    bar.update(task, status=status)

            n_img = min(run_plan.n, len(clean.images))
            n_attacked = plan.n * len(plan.eps) * len(plan.attacks) if plan else 0
            bar.update(task, total=n_img * (1 + n_todo) + _ood_image_count(ood or [], run_plan.n) + n_attacked)
            run = evaluate(models[0], suite, n=run_plan.n, seed=seed, ood=ood, data_root=data_root,
                           batch_size=batch_size, use_cache=use_cache, name=name,
                           progress=on_progress, clean=clean, real_sets=real_sets, attacks=plan,
                           on_update=saver, execution={**run_plan.to_dict(), "ood": list(ood or [])},
                           resume=[prior] if prior else None, trained_on=trained_on,
                           fast=not scored_elsewhere)
    except KeyboardInterrupt:
        if saver.saves:
            console.print(f"interrupted after {saver.sets_saved} of {n_sets} sets: partial results in "
                          f"{out / 'results.json'}; finish them with the same command plus --resume",
                          markup=False, highlight=False)
        raise
    except BaseException:
        for p in created:  # a failed run leaves nothing behind that it made
            p.unlink(missing_ok=True)
        if not out_existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    finish(run.result)
    return run.result, save_run(run, out, formats)


def save_run(run, out: Path, formats=("json",)) -> dict[str, Path]:
    """Write results.json + predictions.npz (+ reports) for one model's run into ``out``."""
    from ..outputs import save_run as write  # shared with the Python API's Result.save

    return write(run, out, formats)


def _ood_image_count(names: list[str], n: int | None) -> int:
    from ..data import _list_image_folder
    from ..ood import SYNTHETIC_N

    total = 0
    for name in names:
        size = len(_list_image_folder(Path(name[7:]).expanduser())[0]) if name.startswith("folder:") \
            else SYNTHETIC_N  # Fashion-MNIST and CIFAR-10 test sets are 10,000 images too
        total += min(size, n) if n else size
    return total


def print_summary(result, written: dict) -> None:
    s = result.summary
    t = Table(title=f"robustmnist — {result.model.name}", show_lines=False)
    t.add_column("set")
    t.add_column("accuracy", justify="right")
    t.add_column("95% CI", justify="right")
    lo, hi = result.clean.accuracy_ci
    t.add_row("clean", f"{result.clean.accuracy:.2%}", f"{lo:.2%}–{hi:.2%}")
    seen = s.get("seen_in_training") or {}
    seen_fams = set(seen.get("families", []))
    for fam, acc in s.get("per_family", {}).items():
        mark = ", seen in training" if fam in seen_fams else ""
        t.add_row(f"  {fam} (mean{mark})", f"{acc:.2%}", "")
    if "mean_shifted_accuracy" in s:
        label = "unseen shifts (mean)" if seen_fams else "all shifts (mean)"
        t.add_row(label, f"{s['mean_shifted_accuracy']:.2%}", "")
        w = s["worst_shift"]
        t.add_row(f"worst: {w['name']} s{w['severity']}", f"{w['accuracy']:.2%}", "")
    if "mce" in s:
        matched = s.get("reference_sets", {}).get("matched")
        t.add_row(f"mCE (vs {s.get('reference', {}).get('name', 'reference')})", f"{s['mce']:.1%}",
                  f"{matched} sets" if matched is not None else "")
    for r in result.real:
        top = r.closest_shifts[0] if r.closest_shifts else None
        t.add_row(f"real {r.name}", f"{r.accuracy:.2%}", f"{r.accuracy_ci[0]:.2%}–{r.accuracy_ci[1]:.2%}")
        if top:
            t.add_row(f"  looks most like {top['name']} s{top['severity']}", f"{top['accuracy']:.2%}", "")
    for o in result.ood:
        t.add_row(f"OOD {o.name}: AUROC (msp)", f"{o.scores['msp']['auroc']:.3f}",
                  f"FPR95 {o.scores['msp']['fpr95']:.3f}")
    out.print(t)
    if seen_fams:
        mean = seen.get("mean_accuracy")
        out.print(f"  seen in training ({seen.get('source', '')}): {', '.join(sorted(seen_fams))}"
                  + (f", mean {mean:.2%}" if mean is not None else "")
                  + "; left out of the headline numbers and mCE", highlight=False)
    for w in s.get("warnings", []):
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    from .bench_cmd import print_listed_sets

    print_listed_sets(s.get("reference_sets", {}).get("listed", []), "this run and the mCE reference")
    for kind, path in written.items():
        console.print(f"  {kind:5s} {path}")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        model: Path = typer.Argument(None, help="model file: TorchScript, robustmnist checkpoint, state_dict "
                                     "(--arch or --model-code), safetensors, Keras .keras/.h5, ONNX, skops, "
                                     "NumPy MLP .npz, or pickle (--trust-pickle); see README"),
        out: Path = typer.Option(Path("robustmnist-results"), "--out", "-o", help="output folder"),
        shift: str = typer.Option(None, "--shift", help="comma list of shift or family names"),
        suite: str = typer.Option(None, "--suite", help="suite name (default, quick, mnist-c) or "
                                  "path to a .toml spec; default: 'default'"),
        severity: str = typer.Option(None, "--severity", help="comma list of levels, e.g. 1,3,5"),
        n: int = typer.Option(None, "--n", help="images per set (default: as many as fit --budget on a "
                              "CPU, all 10,000 on a GPU)"),
        budget: str = typer.Option(None, "--budget", help="time for the whole run, e.g. 90s, 2m, 1h, or "
                                   "none (default: 2m on a CPU, none on a GPU); --n overrides it"),
        resume: bool = typer.Option(False, "--resume", help="finish the partial results an "
                                    "interrupted run left in --out"),
        ood: str = typer.Option(None, "--ood", help="OOD sets: fashion,cifar10,noise,blank,"
                                "folder:PATH"),
        real: str = typer.Option(None, "--real", help="real digit sets: digits,usps,svhn,emnist,qmnist,"
                                 "folder:PATH (sub-folders 0-9),npz:PATH (x, y)"),
        no_shifts: bool = typer.Option(False, "--clean-only", help="score clean MNIST (+ OOD) only"),
        seed: int = typer.Option(0, "--seed", help="seed of the generated sets"),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps"),
        batch_size: int = typer.Option(512, "--batch-size"),  # = engine.DEFAULT_BATCH
        preprocess: str = typer.Option(None, "--preprocess", help="override the input/output "
                                       "convention, e.g. 0-255,784,probs (see README)"),
        arch: str = model_opts.ARCH,
        model_code: str = model_opts.MODEL_CODE,
        model_kwargs: str = model_opts.MODEL_KWARGS,
        predictions: Path = typer.Option(None, "--predictions", help="score PREDS.npz (one N×10 array per "
                                         "set from 'shifts export', plus clean) instead of running a model"),
        trust_pickle: bool = model_opts.TRUST_PICKLE,
        fmt: str = typer.Option("json,html,md,csv", "--format", help="json,html,md,csv"),
        no_cache: bool = typer.Option(False, "--no-cache", help="regenerate sets, don't cache"),
        data_root: Path = model_opts.DATA_ROOT,
        name: str = typer.Option(None, "--name", help="model name shown in reports"),
        reference: Path = typer.Option(None, "--reference", help="results.json of the reference "
                                       "model for CE/mCE (default: the pinned lenet5 reference)"),
        force: bool = typer.Option(False, "--force", help="evaluate even when the input "
                                   "convention looks wrong"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors"),
        attack: str = typer.Option(None, "--attack", help="adversarial attacks: fgsm, pgd, apgd-ce, apgd-t, "
                                   "fab-t, square, autoattack (alone, --attack skips the shift suite)"),
        norm: str = typer.Option("linf", "--norm", help="threat model of --attack: linf or l2"),
        attack_severity: str = typer.Option(None, "--attack-severity", help="eps levels 1-5 (linf 0.05, "
                                            "0.1, 0.15, 0.2, 0.3; l2 0.25, 0.5, 1, 1.5, 2)"),
        restarts: int = typer.Option(1, "--restarts", min=1, help="PGD random restarts"),
        attack_n: int = typer.Option(None, "--attack-n", min=1, help="images to attack (default: what "
                                     "fits --attack-budget on CPU, all 10,000 on CUDA)"),
        attack_budget: float = typer.Option(None, "--attack-budget", help="seconds the attacks may take "
                                            "(default 300 on CPU)"),
        trained_on: str = typer.Option(None, "--trained-on", help="shifts or families the model "
                                       "was trained on (e.g. fonts,noise): marked seen and left "
                                       "out of the headline numbers. robustmnist checkpoints "
                                       "record this themselves"),
    ):
        """Evaluate MODEL on clean MNIST, shifted sets and OOD sets; write results + reports."""
        from ..budget import parse_budget

        ood_names, real_names = parse_name_list(ood), parse_name_list(real)
        check_request(n, batch_size, ood_names, real_names)
        formats = parse_formats(fmt)
        if (model is None) == (predictions is None):
            raise UserError("give a MODEL file or --predictions PREDS.npz (one of the two)")
        if predictions is not None and (ood or real or attack):
            raise UserError("--ood, --real and --attack need a model to score their sets; leave them out "
                            "with --predictions")
        if trained_on:
            from ..seen import resolve

            resolve(None, trained_on)  # unknown names fail before the model is loaded
        attacks_only = attack and suite is None and shift is None  # `eval m.pt --attack pgd` = attacks alone
        the_suite = None if no_shifts or attacks_only else build_suite(suite, shift, severity)
        result, written = run_eval(
            model, out, suite=the_suite, n=n, seed=seed, ood=ood_names, device=device,
            batch_size=batch_size, preprocess=preprocess, arch=arch, trust_pickle=trust_pickle,
            formats=formats, use_cache=not no_cache, data_root=data_root, name=name, force=force,
            reference=reference, quiet=quiet, real=real_names,
            attack=AttackOptions(attack, norm, attack_severity, restarts, attack_n, attack_budget),
            budget=parse_budget(budget), resume=resume, spent_s=time.monotonic() - STARTED,
            model_code=model_code, model_kwargs=model_kwargs, predictions=predictions,
            trained_on=trained_on,
        )
        if not quiet:
            print_summary(result, written)
            print_adversarial(result)

