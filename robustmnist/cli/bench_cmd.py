"""``robustmnist compare | bench | gate``: benchmarking models before deployment."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from ..errors import UserError
from . import model_opts
from .common import STARTED, console, out, parse_name_list, progress, warn
from .trained_on_spec import split_trained_on


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        a: Path = typer.Argument(..., help="results.json of model A"),
        b: Path = typer.Argument(..., help="results.json of model B"),
        alpha: float = typer.Option(0.05, "--alpha", help="significance level"),
        md: Path = typer.Option(None, "--md", help="also write the table as Markdown here"),
    ):
        """Per shift and severity: both accuracies, the difference, and McNemar's exact test."""
        from ..bench import compare, family_winners, load_predictions, pair_sets
        from ..fileio import atomic_write_text
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
        batch_size: int = typer.Option(512, "--batch-size"),  # = engine.DEFAULT_BATCH
        arch: str = model_opts.ARCH,
        preprocess: str = typer.Option(None, "--preprocess", help="input/output convention for "
                                       "every model (MODEL::SPEC overrides it for one)"),
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
        from ..bench import leaderboard, load_reference, reference_from_result
        from ..budget import parse_budget
        from ..engine import evaluate_many, resolve_device
        from ..models.load import load_model
        from ..prepare import check_request, finish, prepare
        from ..report.leaderboard import write_leaderboard
        from .eval_cmd import _ood_image_count, build_suite, parse_formats, save_run

        ood_names, real_names = parse_name_list(ood), parse_name_list(real)
        check_request(n, batch_size, ood_names, real_names)
        formats = parse_formats(fmt)
        specs, ray_address = _models_and_address(models, ray_address, preprocess, trained_on)
        the_suite = build_suite(suite, shift, severity)
        dev = resolve_device("cpu" if ray_address else device)  # with --ray, workers pick theirs
        loaded = [load_model(p, arch=arch, preprocess=spec).to(dev) for p, spec, _ in specs]
        names = _unique_names([m.name for m in loaded])
        # An explicit convention (--preprocess or ::SPEC) is the user's call: no guard for it.
        ready = prepare(loaded, the_suite, explicit=[bool(spec) for _, spec, _ in specs], data_root=data_root, n=n,
                        real=real_names, ood_sets=len(ood_names or []), budget=parse_budget(budget), seed=seed,
                        use_cache=not no_cache, batch_size=batch_size, force=force, warn=warn,
                        spent_s=time.monotonic() - STARTED)
        loaded, plan, clean, real_sets, checks = ready.models, ready.plan, ready.clean, ready.real_sets, ready.checks
        console.print(plan.line(), markup=False, highlight=False)
        n = plan.n
        n_img = min(n, len(clean.images))
        n_sets = len(the_suite.shift_names) * len(the_suite.severities)
        plans = None
        if attack:
            from ..models.fastpath import as_loaded
            from .attack_opts import AttackOptions, same_prefix

            # attacks need gradients: the models as loaded, not their fast paths
            plans = same_prefix([as_loaded(m) for m in loaded], AttackOptions(
                attack, norm, attack_severity, restarts, attack_n, attack_budget), n_img, seed)
        with progress() as bar:
            task = bar.add_task("scoring", status="",
                                total=len(loaded) * (n_img * (1 + n_sets) + _ood_image_count(ood_names or [], n)))

            def on_progress(kind, k, status):
                bar.update(task, advance=k if kind == "score" else 0, **({"status": status} if status else {}))

            run_many, extra = evaluate_many, {"execution": plan.to_dict()}
            if ray_address:  # the same plan and results, as Ray tasks (workers follow the probed paths)
                from ..distributed import ray as on_ray

                run_many = on_ray.evaluate_many
                extra.update(address=ray_address, device=device, stats=on_ray.Stats())
            runs = run_many(loaded, the_suite, n=n, seed=seed, ood=ood_names, data_root=data_root,
                            batch_size=batch_size, use_cache=not no_cache, names=names,
                            progress=on_progress, clean=clean, real_sets=real_sets, attacks=plans,
                            trained_on_each=[t for _, _, t in specs], **extra)
        # One mCE reference everywhere (the pinned lenet5, as eval uses); the first model only
        # gives an extra, separately labelled column.
        ref = load_reference(reference)
        first = (reference_from_result(runs[0].result, predictions=runs[0].predictions)
                 if len(runs) > 1 else None)
        for name, run, check in zip(names, runs, checks, strict=True):
            finish(run.result, check, ref)
            save_run(run, out_dir / name, formats)
        for name, run in zip(names, runs, strict=True):
            print_listed_sets(run.result.summary.get("reference_sets", {}).get("listed", []),
                              f"{name} and the mCE reference")
        rows = leaderboard([r.result for r in runs], ref, relative_to=first)
        ref_info = {"name": ref.name, "sha256": ref.sha256}
        if first is not None:
            ref_info["first"] = {"name": names[0], "sha256": first.sha256}
        real_corr = None
        if real_names:
            from ..real_metrics import family_rank_correlation

            real_corr = family_rank_correlation([r.result for r in runs])
        paths = write_leaderboard(rows, out_dir, the_suite.name, n_img, seed, ref_info, real_corr)
        t = Table(title=f"leaderboard — suite {the_suite.name}, {n_img} images/set")
        robust_col = [f"robust {rows[0].robust_label}"] if plans and rows and rows[0].robust_label else []
        cols = ["#", "model", "clean", "mean shifted", f"mCE (vs {ref.name})", "worst", "OOD AUROC", *robust_col]
        for col in cols + ([f"mCE vs {names[0]}"] if first else []):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r.rank), r.name, f"{r.clean_accuracy:.2%}", f"{r.mean_shifted_accuracy:.2%}",
                      "—" if r.mce is None else f"{r.mce:.1%}", f"{r.worst} ({r.worst_accuracy:.1%})",
                      "—" if r.ood_auroc is None else f"{r.ood_auroc:.3f}",
                      *(["—" if r.robust_accuracy is None else f"{r.robust_accuracy:.2%}"] if robust_col else []),
                      *(["—" if r.mce_vs_first is None else f"{r.mce_vs_first:.1%}"] if first else []))
        out.print(t)
        for c in real_corr or []:
            top = [f for f in c["families"] if f["rho"] is not None][:3]
            out.print(f"real {c['real']} ({c['n_models']} models): best predicted by "
                      + (", ".join(f"{f['family']} ρ={f['rho']:+.2f}" for f in top) or "— (needs 3+ models)"))
        for kind, p in paths.items():
            console.print(f"  {kind:5s} {p}")
        if "stats" in extra:
            st = extra["stats"]
            console.print(f"  ray   {st.tasks_generate} generation + {st.tasks_score + st.tasks_real} scoring "
                          f"tasks on {st.nodes} node(s), {st.cpus:g} CPUs, {st.gpus:g} GPUs ({st.device})"
                          + ("; attacks ran here, on the driver" if plans else ""))

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


def print_listed_sets(listed: list[dict], between: str) -> None:
    """Sets two results do not share byte for byte: said out loud, never dropped silently."""
    if not listed:
        return
    left_out = [d for d in listed if not d["kept"]]
    console.print(f"[yellow]{len(left_out)} set(s) left out and {len(listed) - len(left_out)} kept with a "
                  f"caveat when comparing {between}:[/]")
    for d in listed[:12]:
        console.print(f"  {d['set']:22s} {'kept' if d['kept'] else 'left out'}: {d['reason']}")
    if len(listed) > 12:
        console.print(f"  ... and {len(listed) - 12} more (see results.json summary.reference_sets)")


def _models_and_address(models: list[str], address: str | None, default_spec: str | None = None,
                        default_trained_on: str | None = None
                        ) -> tuple[list[tuple[Path, str | None, str | None]], str | None]:
    """Expand globs and @lists (a ``::SPEC`` applies to every file its pattern names); check --ray
    and every declared --trained-on name before any model is loaded. Each model comes back as
    (path, convention spec, shifts/families it was trained on)."""
    from ..seen import resolve
    from .model_args import expand_model_args

    if address is not None:
        from ..distributed.ray import is_address  # says what to install when Ray is missing

        if not is_address(address):
            raise UserError(f"--ray takes auto, local, HOST:PORT or ray://HOST:PORT, got '{address}'")
    specs: list[tuple[Path, str | None, str | None]] = []
    seen: set[Path] = set()
    for arg in map(str, models):
        pattern, spec, trained_on = _split_model_spec(arg, default_spec, default_trained_on)
        if trained_on:
            resolve(None, trained_on)  # unknown names fail with the list of known ones
        for path in expand_model_args([pattern]):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                specs.append((path, spec, trained_on))
    return specs, address


def _split_model_spec(arg: str, default: str | None, default_trained_on: str | None = None
                      ) -> tuple[str, str | None, str | None]:
    """``net.pt::range=norm`` -> (net.pt, "range=norm", --trained-on); without ``::`` the
    --preprocess value; a ``trained-on=`` item in SPEC replaces --trained-on (trained_on_spec.py)."""
    path, sep, spec = arg.partition("::")
    if sep and not spec.strip():
        raise UserError(f"'{arg}': write MODEL::SPEC, e.g. {path}::range=norm")
    if not sep:
        return path, default or None, default_trained_on or None
    convention, trained_on = split_trained_on(arg, spec.strip())
    return (path, (convention if convention is not None else default) or None,
            default_trained_on if trained_on is None else (trained_on or None))


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    outn = []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            nm = f"{nm}-{seen[nm]}"
        else:
            seen[nm] = 1
        outn.append(nm)
    return outn


