"""``robustmnist predict MODEL IMAGE...``: the quickest way to try a model on one's own photos.

Each image is photo-framed and scored on its own; a bad image gets one line and the rest carry
on. Exit codes: 0 every image predicted, 1 some could not be read, 2 none could (or bad input).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from . import model_opts
from .common import console, out


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        model: Path = typer.Argument(..., help="model file (any format eval takes)"),
        images: list[Path] = typer.Argument(..., help="image files: phone photos, scans, any size"),
        fmt: str = typer.Option("text", "--format", help="text, or json (a list of objects with path, "
                                "prediction, probabilities, top3, doubtful, doubt_reasons, error)"),
        page: Path = typer.Option(None, "--out", help="also write a self-contained HTML page "
                                  "(each photo, its framed 28×28 and the prediction)"),
        polarity: str = typer.Option("auto", "--polarity", help="auto, dark-on-light or white-on-black"),
        preprocess: str = typer.Option(None, "--preprocess", help="the model's input convention, "
                                       "e.g. 0-255,784 (default: the model's stored one)"),
        arch: str = model_opts.ARCH,
        trust_pickle: bool = model_opts.TRUST_PICKLE,
        model_code: str = model_opts.MODEL_CODE,
        model_kwargs: str = model_opts.MODEL_KWARGS,
    ):
        """Predict the digit in each of your own images (photos of handwriting, scans):
        frames each like MNIST, prints the digit, its top-3 probabilities and a warning when
        the framing looks doubtful."""
        from ..api import load_model, predict
        from ..errors import UserError

        if fmt not in ("text", "json"):
            raise UserError(f"--format must be text or json, got {fmt!r}")
        loaded = load_model(str(model), arch=arch, preprocess=preprocess, trust_pickle=trust_pickle,
                            model_code=model_code, model_kwargs=model_kwargs)
        convention = loaded.preprocess.to_string()
        preds = predict(loaded, [str(p) for p in images], polarity=polarity)
        if fmt == "json":
            sys.stdout.write(json.dumps([p.to_dict() for p in preds], indent=2) + "\n")
        else:
            console.print(f"model {model.name} · convention {convention}", markup=False,
                          highlight=False, soft_wrap=True)
            for p in preds:
                if p.error:
                    out.print(f"{p.path}: error: {p.error}", markup=False, highlight=False, soft_wrap=True)
                    continue
                top = "  ".join(f"{d}: {v:.1%}" for d, v in p.top3)
                line = f"{p.path}: {p.prediction}   ({top})"
                if p.doubtful:
                    line += f"   warning: doubtful framing ({', '.join(p.doubtful)})"
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        if page is not None:
            from ..report.predict_page import predict_page

            page.write_text(predict_page(preds, model.name, convention), encoding="utf-8")
            console.print(f"wrote {page}", markup=False, highlight=False, soft_wrap=True)
        bad = sum(1 for p in preds if p.error)
        if bad:
            raise SystemExit(2 if bad == len(preds) else 1)
