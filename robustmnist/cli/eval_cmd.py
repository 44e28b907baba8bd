"""``robustmnist eval``: score a model on clean MNIST, a suite of shifts and OOD sets."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from . import model_opts
from .attack_tables import print_adversarial
from .common import (
    STARTED,
    RunProgress,
    console,
    out,
    parse_int_list,
    parse_name_list,
    print_listed_sets,
    say,
    warn,
)
from .flags import to_flags


def deployment_line(d: dict | None) -> str | None:
    """One line: does the model know when it is wrong (summary["deployment"], metrics/deployment.py)."""
    if not d or "worst_accepted_error" not in d:
        return None
    w, c = d["worst_accepted_error"], d["min_conformal_coverage"]
    fa = d["false_alarm"].get("100")
    power = d.get("mean_power_100")
    silent = d["silent_failures"]
    names = ", ".join(f"{f['name']} s{f['severity']}" for f in silent[:3]) + (" ..." if len(silent) > 3 else "")
    return (f"  deployment: threshold accepting {d['target_coverage']:.0%} of clean accepts "
            f"{d['min_coverage']:.0%}-{d['max_coverage']:.0%} of shifted; silent errors up to "
            f"{w['accepted_error_rate']:.1%} ({w['name']} s{w['severity']}); {1 - d['alpha']:.0%} sets cover "
            f">= {c['coverage']:.0%}; monitor (batch 100) "
            + (f"fires {power:.0%}, false alarm {fa:.0%}" if power is not None and fa is not None else "n/a")
            + f"; silent failures: {len(silent)}" + (f" ({names})" if silent else ""))


def shift_table(result) -> Table | None:
    """Each shifted set's accuracy and 95% interval, a row per shift and a column per severity:
    for runs of a few named shifts (--shift), where the mean and the worst alone hide the ladder."""
    if not result.shifts:
        return None
    sevs = sorted({r.severity for r in result.shifts})
    rows: dict[str, dict[int, object]] = {}
    for r in result.shifts:  # in the order the run scored them (the suite's order)
        rows.setdefault(r.name, {})[r.severity] = r
    # accuracy over its interval in each cell keeps five severities within 80 columns
    t = Table(title="accuracy % per severity (95% interval below)", show_lines=False, pad_edge=False)
    t.add_column("shift")
    for sev in sevs:
        t.add_column(f"s{sev}", justify="right")
    for name, by_sev in rows.items():
        seen = any(getattr(r, "seen", False) for r in by_sev.values())
        cells = []
        for sev in sevs:
            r = by_sev.get(sev)
            if r is None:
                cells.append("—")
                continue
            lo, hi = (r.accuracy_ci or [None, None])[:2]
            ci = f"\n[dim]{lo * 100:.1f}–{hi * 100:.1f}[/]" if lo is not None and hi is not None else ""
            cells.append(f"{r.accuracy * 100:.1f}{ci}")
        t.add_row(escape(name) + (" (seen)" if seen else ""), *cells)
    return t


def print_summary(result, written: dict, per_shift: bool = False) -> None:
    """The run's headline table; ``per_shift`` (the user named shifts) adds every set's
    accuracy with its interval, while a whole-suite run stays as short as its headline."""
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
    if "mce" in s:  # what the ratio is against: "mCE 142% vs lenet5" puzzles the owner of a lenet5
        from ..metrics.corruption import mce_note

        out.print(f"  {mce_note(s.get('reference'), result.model, result.clean.accuracy)}", highlight=False,
                  markup=False)
    table = shift_table(result) if per_shift else None
    if table is not None:
        out.print(table)
    if seen_fams:
        mean = seen.get("mean_accuracy")
        out.print(f"  seen in training ({seen.get('source', '')}): {', '.join(sorted(seen_fams))}"
                  + (f", mean {mean:.2%}" if mean is not None else "")
                  + "; left out of the headline numbers and mCE", highlight=False)
    line = deployment_line(s.get("deployment"))
    if line:
        out.print(line, highlight=False)
    for w in s.get("warnings", []):
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    print_listed_sets(s.get("reference_sets", {}).get("listed", []), "this run and the mCE reference")
    for kind, path in written.items():
        console.print(f"  {kind:5s} {path}")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        model: Path = typer.Argument(None, help="model file: TorchScript, robustmnist checkpoint, state_dict "
                                     "(--arch or --model-code), safetensors, Keras .keras/.h5, ONNX, skops, "
                                     "NumPy MLP .npz, or pickle (--trust-pickle); docs: models"),
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
        overwrite: bool = typer.Option(False, "--overwrite", help="replace another model's results "
                                       "in --out"),
        ood: str = typer.Option(None, "--ood", help="OOD sets: fashion,cifar10,noise,blank,"
                                "folder:PATH"),
        real: str = typer.Option(None, "--real", help="real digit sets: digits,usps,svhn,emnist,qmnist,"
                                 "folder:PATH (sub-folders 0-9),npz:PATH (x, y)"),
        no_shifts: bool = typer.Option(False, "--clean-only", help="score clean MNIST (+ OOD) only"),
        seed: int = typer.Option(0, "--seed", help="seed of the generated sets"),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps"),
        batch_size: int = typer.Option(512, "--batch-size"),  # = run.scoring.DEFAULT_BATCH
        preprocess: str = typer.Option(None, "--preprocess", help="override the input/output "
                                       "convention, e.g. 0-255,784,probs, or auto: apply the one the convention "
                                       "check detects (docs: models)"),
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
        selective_coverage: float = typer.Option(0.95, "--selective-coverage", help="share of clean digits "
                                                 "the confidence threshold accepts (selective prediction)"),
        conformal_alpha: float = typer.Option(0.1, "--conformal-alpha", help="conformal prediction sets "
                                              "aim at coverage 1 - alpha"),
        trained_on: str = typer.Option(None, "--trained-on", help="shifts or families the model "
                                       "was trained on (e.g. fonts,noise): marked seen and left "
                                       "out of the headline numbers. robustmnist checkpoints "
                                       "record this themselves"),
    ):
        """Evaluate MODEL on clean MNIST, shifted sets and OOD sets; write results + reports."""
        from ..api import evaluate
        from ..errors import RunInterrupted

        try:
            with RunProgress(quiet=quiet) as bar:
                result = evaluate(
                    model, suite=suite, shift=shift, severity=parse_int_list(severity, "--severity"), n=n,
                    ood=parse_name_list(ood), real=parse_name_list(real), preprocess=preprocess, device=device,
                    budget=budget, seed=seed, arch=arch, trust_pickle=trust_pickle, model_code=model_code,
                    model_kwargs=model_kwargs, name=name, clean_only=no_shifts, batch_size=batch_size,
                    reference=reference, force=force, data_root=data_root, use_cache=not no_cache,
                    trained_on=trained_on, attack=attack, norm=norm, attack_severity=attack_severity,
                    restarts=restarts, attack_n=attack_n, attack_budget=attack_budget, predictions=predictions,
                    out=out, formats=fmt, resume=resume, overwrite=overwrite, selective_coverage=selective_coverage,
                    conformal_alpha=conformal_alpha, progress=bar, log=None if quiet else say,
                    warn=None if quiet else warn, spent_s=time.monotonic() - STARTED)
        except RunInterrupted as exc:  # click turns Ctrl-C into Abort: say where the partial results are
            console.print(to_flags(exc.raw), markup=False, highlight=False)
            raise
        if not quiet:
            print_summary(result, result.written, per_shift=shift is not None)
            print_adversarial(result)
