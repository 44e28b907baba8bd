"""``robustmnist shifts list|preview|verify|export``: what the catalog holds, what it looks like,
whether this machine makes the same sets as the pinned fingerprints, and the sets as files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from . import model_opts
from .common import console, out


def _fmt_levels(suite, name: str) -> str:
    if name not in suite.shift_params:
        return "—"
    levels = suite.shift_params[name]
    keys = [k for k in levels[0] if any(lv[k] != levels[0][k] for lv in levels)] or list(levels[0])[:1]
    return "; ".join(f"{k}=" + "/".join(str(lv[k]) for lv in levels) for k in keys)


def register(app: typer.Typer) -> None:
    shifts_app = typer.Typer(help="List, preview and verify the shift catalog.", no_args_is_help=True)
    app.add_typer(shifts_app, name="shifts")

    @shifts_app.command("list")
    def list_cmd(
        suite: str = typer.Option("default", "--suite", help="suite whose severity ladders to show"),
    ):
        """Table of every registered shift: family, version, description and severity ladder."""
        from ..shifts.registry import shift_infos  # the catalogue's metadata: no torch to import
        from ..shifts.suite import load_suite

        s = load_suite(suite)
        t = Table(title=f"robustmnist shifts (ladders from suite '{s.name}')")
        for col in ("name", "family", "v", "kind", "description", "levels (1/2/3/4/5)"):
            t.add_column(col, overflow="fold")
        for name, sh in {**shift_infos(), **s.custom}.items():  # with the spec's own library shifts
            t.add_row(name, sh.family, str(sh.version), sh.kind, sh.description, _fmt_levels(s, name))
        out.print(t)

    @shifts_app.command("preview")
    def preview_cmd(
        names: str = typer.Argument(None, help="comma list of shifts or families"),
        all_: bool = typer.Option(False, "--all", help="every shift in the suite"),
        out_path: Path = typer.Option(Path("preview.png"), "--out", "-o", help="PNG to write"),
        suite: str = typer.Option("default", "--suite"),
        seed: int = typer.Option(0, "--seed"),
        cols: int = typer.Option(12, "--cols", min=1, max=40, help="digits per row"),
        data_root: Path = model_opts.DATA_ROOT,
    ):
        """Grid per shift: rows are severities 0 (clean) to 5, columns the same test digits."""
        from ..data.datasets import load_mnist
        from ..errors import UserError
        from ..shifts.preview import save_preview
        from ..shifts.suite import load_suite

        s = load_suite(suite)
        if all_:
            picked = s.shift_names
        elif names:
            from ..api import build_suite  # knows the spec's own library shifts too

            s = build_suite(s, names)
            picked = s.shift_names
        else:
            raise UserError("name the shifts to preview (e.g. rotate,noise) or pass --all")
        mnist = load_mnist("test", data_root)
        path = save_preview(picked, s, mnist.images, mnist.labels, out_path, n_cols=cols, seed=seed)
        console.print(f"wrote {path} ({len(picked)} shift(s))")

    @shifts_app.command("verify")
    def verify_cmd(
        suite: str = typer.Option("default", "--suite"),
        n: int = typer.Option(10_000, "--n", min=1, help="images per set (any n: sets are nested)"),
        shift: str = typer.Option(None, "--shift", help="only these shifts or families (comma list)"),
        reference: Path = typer.Option(None, "--reference", help="pinned reference holding the fingerprints"),
        data_root: Path = model_opts.DATA_ROOT,
    ):
        """Regenerate sets and compare them with the pinned fingerprints (exit 1 if any differ)."""
        from ..data.datasets import load_mnist
        from ..metrics.reference import load_reference
        from ..shifts.registry import resolve_names
        from ..shifts.suite import load_suite
        from ..shifts.verify import verify_suite

        s = load_suite(suite)
        if shift:
            s = s.restrict(resolve_names(shift))
        pins = load_reference(reference)
        mnist = load_mnist("test", data_root)
        n = min(n, len(mnist.images))
        with console.status("regenerating sets") as status:
            checks = verify_suite(s, pins, mnist.images, mnist.labels, n,
                                  progress=lambda sid: status.update(f"regenerating {sid}"))
        matched = [c for c in checks if c.status == "match"]
        differ = [c for c in checks if c.status == "differ"]
        unpinned = [c for c in checks if c.status == "unpinned"]
        pinned = len(checks) - len(unpinned)
        out.print(f"{len(matched)} of {pinned} pinned sets match ({n} images each)"
                  + (f"; {len(unpinned)} set(s) have no pin" if unpinned else ""))
        if differ:
            t = Table(title="sets that differ from the pinned fingerprints")
            for col in ("set", "where", "pixels", "images", "max |diff|"):
                t.add_column(col, overflow="fold")
            for c in differ:
                known = c.pixels is not None
                t.add_row(c.set_id, c.detail, str(c.pixels) if known else "?", str(c.images) if known else "?",
                          str(c.max_abs) if known else "?")
            out.print(t)
        raise typer.Exit(1 if differ else 0)
    @shifts_app.command("export")
    def export_cmd(
        out_path: Path = typer.Option(..., "--out", "-o", help="new folder to write the sets into"),
        suite: str = typer.Option("default", "--suite", help="suite name or path of a .toml spec"),
        shift: str = typer.Option(None, "--shift", help="comma list of shift or family names"),
        severity: str = typer.Option(None, "--severity", help="comma list of levels, e.g. 1,3,5"),
        n: int = typer.Option(None, "--n", help="images per set (default: all 10,000)"),
        seed: int = typer.Option(0, "--seed", help="seed of the generated sets"),
        fmt: str = typer.Option("npz", "--format", help="npz, idx (MNIST's own format) or png"),
        data_root: Path = model_opts.DATA_ROOT,
    ):
        """Write every set (and clean) with a manifest, to score with any framework or language;
        score them back in with robustmnist eval --predictions."""
        from ..api import build_suite
        from ..shifts.export import export_sets

        s = build_suite(suite, shift, severity)
        total = 1 + len(s.shift_names) * len(s.severities)
        done = [0]

        def on_set(name: str) -> None:
            done[0] += 1
            console.print(f"  [{done[0]}/{total}] {name}")

        path = export_sets(s, out_path, fmt.strip().lower(), n=n, seed=seed, data_root=data_root, progress=on_set)
        console.print(f"wrote {total} sets to {path} (manifest.json lists them)")
