"""``robustmnist demo``: the whole product in one command — train two small models, evaluate
them on the default suite and the OOD sets, and write reports plus a comparison."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from . import model_opts
from .common import console, out, progress

DEMO_MODELS = ("lenet5", "mlp-784-256-128-64-10")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        # Not reports/demo: run from a clone, that would rewrite the committed sample report.
        out_dir: Path = typer.Option(Path("robustmnist-demo"), "--out", "-o", help="where reports go"),
        n: int = typer.Option(1000, "--n", help="images per shifted set (the full suite × 10,000 "
                              "is minutes on a CPU; pass --n 10000 on a GPU)"),
        suite: str = typer.Option("default", "--suite"),
        ood: str = typer.Option("fashion,cifar10", "--ood"),
        real: str = typer.Option("digits", "--real", help="real digit sets scored beside the suite "
                                 "(scikit-learn's bundled digits need no download)"),
        device: str = typer.Option("auto", "--device"),
        data_root: Path = model_opts.DATA_ROOT,
        seed: int = typer.Option(0, "--seed"),
    ):
        """Train lenet5 and an MLP briefly, evaluate both, write HTML reports and a comparison."""
        from ..bench import apply_reference, leaderboard, load_reference, reference_from_result
        from ..data import data_root as resolve_root
        from ..data import load_mnist
        from ..engine import evaluate_many, resolve_device
        from ..errors import UserError
        from ..models.load import load_model
        from ..models.recipes import DEMO_SCHEDULES
        from ..report.leaderboard import write_leaderboard
        from ..report.render import render_reports
        from ..train.loop import train
        from .eval_cmd import _ood_image_count, build_suite, save_run
        from .train_cmd import training_progress

        t0 = time.perf_counter()
        root = resolve_root(data_root)
        try:
            clean = load_mnist("test", root)
            load_mnist("train", root)
        except UserError as exc:
            raise UserError(f"{exc} The demo needs MNIST (train and test); see the README, 'Offline "
                            "use and the data root', then: ROBUSTMNIST_DATA=FOLDER robustmnist demo") from None
        console.print(f"data root: {root}")
        dev = resolve_device(device)
        models_dir = out_dir / "models"
        loaded = []
        train_s = {}
        for arch in DEMO_MODELS:
            console.print(f"[bold]training {arch}[/] {DEMO_SCHEDULES[arch]}")
            t = time.perf_counter()
            with training_progress() as cb:
                run = train(arch, dataset="mnist", seed=seed, device=device, data_root=root, progress=cb,
                            **DEMO_SCHEDULES[arch])
            train_s[arch] = time.perf_counter() - t
            path = models_dir / f"{arch}.pt"
            run.save(path)
            console.print(f"  test accuracy {run.test_accuracy:.2%} in {train_s[arch]:.0f} s -> {path}")
            loaded.append(load_model(path).to(dev))

        the_suite = build_suite(suite, None, None)
        ood_names = [o for o in ood.split(",") if o]
        real_names = [r for r in real.split(",") if r]
        if real_names:
            from ..real import check_real_names

            check_real_names(real_names)
        n_img = min(n, len(clean.images))
        n_sets = len(the_suite.shift_names) * len(the_suite.severities)
        with progress() as bar:
            task = bar.add_task("evaluating", status="", total=len(loaded) * (
                n_img * (1 + n_sets) + _ood_image_count(ood_names, n)))

            def on_progress(kind, k, status):
                bar.update(task, advance=k if kind == "score" else 0, **({"status": status} if status else {}))

            runs = evaluate_many(loaded, the_suite, n=n, seed=seed, ood=ood_names, data_root=root,
                                 progress=on_progress, clean=clean, names=list(DEMO_MODELS), real=real_names)
        # The pinned reference, as eval and bench use (mCE of lenet5 against itself says nothing);
        # the MLP against the demo's own lenet5 is the leaderboard's extra, labelled column.
        ref = load_reference()
        first = reference_from_result(runs[0].result)
        for arch, r in zip(DEMO_MODELS, runs, strict=True):
            apply_reference(r.result, ref)
            save_run(r, out_dir / arch, ("json", "html", "md", "csv"))
        results = [r.result for r in runs]
        written = render_reports(results, out_dir, formats={"html", "md", "csv"})
        rows = leaderboard(results, ref, relative_to=first)
        from ..real_metrics import family_rank_correlation

        write_leaderboard(rows, out_dir, the_suite.name, n_img, seed,
                          {"name": ref.name, "sha256": ref.sha256,
                           "first": {"name": DEMO_MODELS[0], "sha256": first.sha256}},
                          family_rank_correlation(results) if real_names else None)

        t = Table(title=f"robustmnist demo — suite '{the_suite.name}', {n_img} images per set")
        for col in ("model", "clean acc.", "mean shifted", "worst shift", "fonts", "euro", "OOD AUROC (msp)",
                    "real (looks most like)"):
            t.add_column(col)
        for r in results:
            s = r.summary
            w = s.get("worst_shift", {})
            fam = s.get("per_family", {})
            t.add_row(r.model.name, f"{r.clean.accuracy:.2%}", f"{s.get('mean_shifted_accuracy', 0):.2%}",
                      f"{w.get('name')} s{w.get('severity')} ({w.get('accuracy', 0):.1%})",
                      f"{fam['fonts']:.1%}" if "fonts" in fam else "—",
                      f"{fam['euro']:.1%}" if "euro" in fam else "—",
                      ", ".join(f"{o.name} {o.scores['msp']['auroc']:.3f}" for o in r.ood) or "—",
                      ", ".join(f"{x.name} {x.accuracy:.1%} ({x.closest_shifts[0]['name']})" if x.closest_shifts
                                else f"{x.name} {x.accuracy:.1%}" for x in r.real) or "—")
        out.print(t)
        console.print(f"comparison report: {written['html'].resolve()}")
        for arch in DEMO_MODELS:
            console.print(f"{arch} report:  {(out_dir / arch / 'report.html').resolve()}")
        console.print(f"done in {time.perf_counter() - t0:.0f} s (training {sum(train_s.values()):.0f} s)")
