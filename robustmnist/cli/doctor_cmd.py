"""``robustmnist doctor``: name the preprocessing or output-convention mistake behind a bad score.

Exit codes: 0 the model looks healthy under its declared convention, 1 findings (errors or
warnings; info notes alone keep 0), 2 bad input. The rich report goes to stderr; ``--json``
writes the machine-readable diagnosis to stdout.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from . import model_opts
from .common import console, out

_MARK = {"error": ("✗", "bold red"), "warning": ("!", "bold yellow"), "info": ("i", "cyan")}
TOP_CONVENTIONS = 6


def _declared_source(model, preprocess: str | None) -> str:
    if preprocess:
        return "--preprocess"
    if model.format == "checkpoint":
        return "stored in the checkpoint"
    if isinstance(getattr(model.module, "robustmnist_preprocess", None), str):
        return "stored in the TorchScript file"
    return "default"


def render(d, model_path: Path, con=console) -> None:
    """The human-readable diagnosis on ``con`` (stdout unless --json takes it)."""
    m = d.model
    con.print(Text.assemble(("robustmnist doctor ", "bold"), (Path(m["path"]).name, "bold cyan"),
                                f"  ({m['format']}{', ' + m['arch'] if m['arch'] else ''}, "
                                f"sha256 {m['sha256'][:12]})"))
    n_inputs = len({c.preprocess.to_string().rsplit(",output=", 1)[0] for c in d.conventions})
    con.print(f"{d.n_images:,} MNIST test images, {n_inputs} input conventions × 3 output readings, "
                  f"{d.seconds:.1f} s")

    # Spec strings are printed unwrapped (soft_wrap) so they can be copied whole from a terminal.
    decl_acc = "rejected" if d.declared.error else f"{d.declared.accuracy:.1%}"
    label = f"declared ({d.declared_source})"
    width = max(len(label), 4) + 1
    con.print(Text.assemble(f"{label + ':':<{width}} {decl_acc:>8}  ", d.declared.spec), soft_wrap=True)
    style = "bold green" if d.fix_preprocess else ""
    con.print(Text.assemble(f"{'best:':<{width}} ", (f"{d.best.accuracy:>8.1%}  {d.best.spec}", style)),
                  soft_wrap=True)

    # The top few input conventions, read with the detected output kind: shows at a glance
    # whether one convention stands out or all sit at chance.
    kind = d.output_kind if d.output_kind != "unknown" else d.declared.preprocess.output
    ranked = sorted((c for c in d.conventions if c.preprocess.output == kind and c.error is None),
                    key=lambda c: -c.accuracy)
    con.print(f"top conventions (of {n_inputs}, output={kind}):")
    top = Table(box=None, pad_edge=False, show_header=False)
    top.add_column("convention", overflow="fold")
    top.add_column("accuracy", justify="right")
    for c in ranked[:TOP_CONVENTIONS]:
        top.add_row(c.spec.rsplit(",output=", 1)[0], f"{c.accuracy:.1%}")
    con.print(top)

    if not d.findings:
        con.print("[bold green]✓ healthy:[/] the model looks right under its declared convention")
    shown_fix = None
    for f in d.findings:
        mark, style = _MARK[f.severity]
        con.print(Text.assemble((f"{mark} {f.severity}: ", style), (f.title, "bold")))
        # wrapped here rather than by rich, which pads every line to the console width
        con.print(Text(textwrap.fill(f.detail, width=max(40, con.width - 2), initial_indent="  ",
                                         subsequent_indent="  ")), soft_wrap=True)
        if f.fix and f.fix != shown_fix:  # two findings with one cure (range and log_softmax): say it once
            con.print(Text.assemble(("  fix: ", "bold"), f.fix), soft_wrap=True)
            shown_fix = f.fix
    for note in d.notes:
        con.print(Text(f"note: {note}", style="dim"))
    if d.fix_preprocess:
        con.print(Text.assemble(("\nRe-run with: ", "bold"),
                                    f"robustmnist eval {model_path} --preprocess {d.fix_preprocess}",
                                    "\n  (or --preprocess auto: the same, detected at the start of the run)"),
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor_cmd(
        model: Path = typer.Argument(..., help="model file: TorchScript, robustmnist checkpoint, "
                                     "state_dict (with --arch), ONNX, or pickle (--trust-pickle)"),
        preprocess: str = typer.Option(None, "--preprocess", help="the convention to check, e.g. "
                                       "0-255,784,probs (default: the model's stored one)"),
        arch: str = model_opts.ARCH,
        trust_pickle: bool = model_opts.TRUST_PICKLE,
        model_code: str = model_opts.MODEL_CODE,
        model_kwargs: str = model_opts.MODEL_KWARGS,
        data_root: Path = model_opts.DATA_ROOT,
        as_json: bool = typer.Option(False, "--json", help="print the diagnosis as JSON on stdout"),
    ):
        """Diagnose a model that scores badly: try every input range, polarity, layout,
        transposition and output reading on 1,000 MNIST test images and name the mistake."""
        from ..doctor import diagnose, load_for_diagnosis

        loaded, declared = load_for_diagnosis(model, arch=arch, preprocess=preprocess,
                                              trust_pickle=trust_pickle, model_code=model_code,
                                              model_kwargs=model_kwargs)
        with console.status("scoring every convention on 1,000 MNIST test images"):
            d = diagnose(loaded, data_root=data_root, declared=declared,
                         declared_source=_declared_source(loaded, preprocess))
        # The diagnosis is the command's result: stdout (`doctor m.pt > diag.txt` keeps it),
        # unless --json owns stdout, when the readable version goes to stderr.
        render(d, model, console if as_json else out)
        if as_json:
            sys.stdout.write(json.dumps(d.to_dict(), indent=2) + "\n")
        if not d.healthy:
            # SystemExit, not typer.Exit: under standalone_mode=False (cli.main) typer *returns*
            # an Exit's code instead of raising it, and main() would exit 0.
            sys.exit(1)
