"""``robustmnist demo``: the whole product in one command — train two small models, evaluate
them on the default suite and the OOD sets, and write reports plus a comparison."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from . import model_opts
from .common import RunProgress, console, out, say, warn

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
        from ..api import bench
        from ..data.datasets import data_root as resolve_root
        from ..data.datasets import load_mnist
        from ..errors import UserError
        from ..models.recipes import DEMO_SCHEDULES
        from ..report.render import render_reports
        from ..train.loop import train
        from .train_cmd import training_progress

        t0 = time.perf_counter()
        root = resolve_root(data_root)
        try:
            load_mnist("test", root)
            load_mnist("train", root)
        except UserError as exc:
            raise UserError(f"{exc.raw} The demo needs MNIST (train and test); see the README, 'Offline "
                            "use and the data root', then: ROBUSTMNIST_DATA=FOLDER robustmnist demo") from None
        console.print(f"data root: {root}")
        models_dir = out_dir / "models"
        paths = []
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
            paths.append(path)

        # the same service as bench: one generation pass for both models, the pinned mCE reference
        # (mCE of lenet5 against itself says nothing), the MLP against the demo's own lenet5 as the
        # leaderboard's extra, labelled column
        with RunProgress(counted=("score",)) as bar:
            res = bench([str(p) for p in paths], suite=suite, n=n, ood=ood, real=real or None, seed=seed,
                        device=device, data_root=root, out=out_dir, formats="json,html,md,csv", progress=bar,
                        log=say, warn=warn)
        results = res.results
        written = render_reports(results, out_dir, formats={"html", "md", "csv"})
        n_img = res.n

        t = Table(title=f"robustmnist demo — suite '{res.suite}', {n_img} images per set")
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
