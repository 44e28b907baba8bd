"""``robustmnist compare | bench | gate``: benchmarking models before deployment."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from ..errors import UserError
from . import model_opts
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


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        a: Path = typer.Argument(..., help="results.json of model A"),
        b: Path = typer.Argument(..., help="results.json of model B"),
        alpha: float = typer.Option(0.05, "--alpha", help="significance level"),
        md: Path = typer.Option(None, "--md", help="also write the table as Markdown here"),
    ):
        """Per shift and severity: both accuracies, the difference, and McNemar's exact test."""
        from ..fileio import atomic_write_text
        from ..metrics.paired import compare, family_winners, load_predictions, pair_sets
        from ..report.leaderboard import comparison_md
        from ..results import Result

        ra, rb = Result.load(a), Result.load(b)
        rows = compare(ra, load_predictions(ra, a), rb, load_predictions(rb, b))
        print_listed_sets(pair_sets(ra, rb)[1], "A and B")
        if len(rows) <= 1:
            console.print("[yellow]the two results share no shifted sets with identical images "
                          "(same suite and --seed); only clean is compared[/]")
        t = Table(title=f"A = {ra.model.name}   B = {rb.model.name}")
        for col in ("set", "acc A", "acc B", "B − A", "A✓B✗", "A✗B✓", "p (McNemar)"):
            t.add_column(col, justify="left" if col == "set" else "right")
        for r in rows:
            sig = r.p_value < alpha
            color = ("green" if r.diff > 0 else "red") if sig else "default"
            t.add_row(r.set_id, f"{r.acc_a:.2%}", f"{r.acc_b:.2%}", f"[{color}]{100 * r.diff:+.2f} pt[/]",
                      str(r.b), str(r.c), f"{r.p_value:.3g}" + (" *" if sig else ""))
        out.print(t)
        winners = family_winners(rows, alpha)
        for fam, w in winners.items():
            who = {"A": ra.model.name, "B": rb.model.name}.get(w, "no significant winner")
            out.print(f"  {fam:12s} winner: {who}")
        if md:
            atomic_write_text(md, comparison_md(rows, ra.model.name, rb.model.name, winners))

    @app.command("bench")
    def bench_cmd(
        models: list[str] = typer.Argument(..., help="model files, quoted globs ('sweep/*.pt') or "
                                           "@list.txt (one path or glob per line); MODEL::SPEC sets one "
                                           "model's convention, e.g. net.pt::range=norm, and "
                                           "MODEL::trained-on=fonts what it was trained on"),
        out_dir: Path = typer.Option(Path("robustmnist-bench"), "--out", "-o"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace other models' results in --out"),
        suite: str = typer.Option("default", "--suite"),
        shift: str = typer.Option(None, "--shift"),
        severity: str = typer.Option(None, "--severity"),
        n: int = typer.Option(None, "--n", help="images per set (default: as many as fit --budget on a "
                              "CPU, all 10,000 on a GPU)"),
        budget: str = typer.Option(None, "--budget", help="time for the whole run, e.g. 5m or none "
                                   "(default: 2m on a CPU, none on a GPU); --n overrides it"),
        ood: str = typer.Option(None, "--ood"),
        real: str = typer.Option(None, "--real", help="real digit sets (as eval --real); the leaderboard "
                                 "ranks which shift families predict them"),
        reference: Path = typer.Option(None, "--reference", help="results.json of the mCE reference "
                                       "(default: the pinned lenet5 reference, as in eval)"),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device"),
        batch_size: int = typer.Option(512, "--batch-size"),  # = run.scoring.DEFAULT_BATCH
        arch: str = model_opts.ARCH,
        preprocess: str = typer.Option(None, "--preprocess", help="input/output convention for "
                                       "every model, or auto: the detected one (MODEL::SPEC or MODEL::auto "
                                       "for one)"),
        force: bool = typer.Option(False, "--force", help="benchmark even when a model's input "
                                   "convention looks wrong"),
        no_cache: bool = typer.Option(False, "--no-cache"),
        data_root: Path = model_opts.DATA_ROOT,
        fmt: str = typer.Option("json,md", "--format", help="per-model outputs: json,html,md,csv"),
        ray_address: str = typer.Option(None, "--ray", help="score on a Ray cluster: auto (the running "
                                        "one), local (start one here) or HOST:PORT; needs the ray extra"),
        attack: str = typer.Option(None, "--attack", help="adversarial attacks (as eval --attack)"),
        norm: str = typer.Option("linf", "--norm", help="linf or l2"),
        attack_severity: str = typer.Option(None, "--attack-severity", help="eps levels 1-5"),
        restarts: int = typer.Option(1, "--restarts", min=1, help="PGD random restarts"),
        attack_n: int = typer.Option(None, "--attack-n", min=1, help="images to attack per model"),
        attack_budget: float = typer.Option(None, "--attack-budget", help="seconds per model (default "
                                            "300 on CPU)"),
        trained_on: str = typer.Option(None, "--trained-on", help="shifts or families every model was "
                                       "trained on (as eval --trained-on; MODEL::trained-on=... "
                                       "overrides it for one)"),
    ):
        """Evaluate several models on the same sets (each generated once) and rank them."""
        from ..api import bench

        with RunProgress(counted=("score",)) as bar:
            res = bench(models, suite=suite, shift=shift, severity=parse_int_list(severity, "--severity"), n=n,
                        budget=budget, ood=parse_name_list(ood), real=parse_name_list(real), reference=reference,
                        seed=seed, device=device, batch_size=batch_size, arch=arch, preprocess=preprocess,
                        force=force, use_cache=not no_cache, data_root=data_root, ray=ray_address, attack=attack,
                        norm=norm, attack_severity=attack_severity, restarts=restarts, attack_n=attack_n,
                        attack_budget=attack_budget, trained_on=trained_on, out=out_dir, formats=fmt,
                        overwrite=overwrite, progress=bar, log=say, warn=warn, spent_s=time.monotonic() - STARTED)
        print_leaderboard(res)

    @app.command("gate")
    def gate_cmd(
        results: Path = typer.Argument(..., help="results.json to check"),
        policy: Path = typer.Option(..., "--policy", help="gate policy TOML"),
    ):
        """Check results against a policy: exit 0 when every rule passes, 1 when any fails."""
        from ..gate import check, load_policy
        from ..results import Result

        pol = load_policy(policy)
        res = Result.load(results)
        if res.partial:  # a gate that passes on the sets an interrupted run happened to finish
            raise UserError(f"{results} holds partial results (the run was interrupted); finish it "
                            "with robustmnist eval ... --resume before gating")
        rules = check(res, pol)
        t = Table(title=f"gate: {res.model.name} vs {policy.name}")
        for col in ("", "rule", "measured", "threshold", "detail"):
            t.add_column(col)
        for r in rules:
            t.add_row("[green]PASS[/]" if r.passed else "[red]FAIL[/]", r.rule, f"{r.measured:.4f}",
                      f"{r.threshold:.4f}", r.detail)
        out.print(t)
        failed = sum(not r.passed for r in rules)
        out.print(f"{len(rules) - failed} passed, {failed} failed")
        raise typer.Exit(1 if failed else 0)


def _pct_or_dash(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}%}"


def print_leaderboard(res) -> None:
    """bench's terminal summary: sets left out, the leaderboard, real-set predictors, files."""
    for r in res.results:
        print_listed_sets(r.summary.get("reference_sets", {}).get("listed", []),
                          f"{r.model.name} and the mCE reference")
    rows, ref = res.leaderboard, res.reference
    first = ref.get("first")
    attacked = any(r.adversarial is not None for r in res.results)
    t = Table(title=f"leaderboard — suite {res.suite}, {res.n} images/set")
    robust_col = [f"robust {rows[0].robust_label}"] if attacked and rows and rows[0].robust_label else []
    cols = ["#", "model", "clean", "mean shifted", f"mCE (vs {ref['name']})", "worst", "OOD AUROC", *robust_col]
    for col in cols + ([f"mCE vs {first['name']}"] if first else []):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.rank), r.name, f"{r.clean_accuracy:.2%}", f"{r.mean_shifted_accuracy:.2%}",
                  "—" if r.mce is None else f"{r.mce:.1%}", f"{r.worst} ({r.worst_accuracy:.1%})",
                  "—" if r.ood_auroc is None else f"{r.ood_auroc:.3f}",
                  *(["—" if r.robust_accuracy is None else f"{r.robust_accuracy:.2%}"] if robust_col else []),
                  *(["—" if r.mce_vs_first is None else f"{r.mce_vs_first:.1%}"] if first else []))
    out.print(t)
    if any(r.mce is not None for r in rows):  # what mCE is against, in one line (metrics.corruption)
        from ..metrics.corruption import mce_note

        out.print(f"  {mce_note(ref)}", highlight=False, markup=False)
    if any(r.silent_failures is not None for r in rows):  # a table of its own: the leaderboard stays readable
        d = Table(title="does it know when it is wrong? (clean 95% threshold, 90% conformal sets, KS monitor)")
        for col in ("model", "max silent errors", "min conformal coverage", "monitor fires (100)", "silent failures"):
            d.add_column(col)
        for r in rows:
            d.add_row(r.name, _pct_or_dash(r.max_accepted_error), _pct_or_dash(r.min_conformal_coverage, 0),
                      _pct_or_dash(r.power_100, 0), "—" if r.silent_failures is None else str(r.silent_failures))
        out.print(d)
    for c in res.real_correlation or []:
        top = [f for f in c["families"] if f["rho"] is not None][:3]
        out.print(f"real {c['real']} ({c['n_models']} models): best predicted by "
                  + (", ".join(f"{f['family']} ρ={f['rho']:+.2f}" for f in top) or "— (needs 3+ models)"))
    for kind, p in res.written.items():
        console.print(f"  {kind:5s} {p}")
    if res.ray is not None:
        st = res.ray
        console.print(f"  ray   {st.tasks_generate} generation + {st.tasks_score + st.tasks_real} scoring "
                      f"tasks on {st.nodes} node(s), {st.cpus:g} CPUs, {st.gpus:g} GPUs ({st.device})"
                      + ("; attacks ran here, on the driver" if attacked else ""))
