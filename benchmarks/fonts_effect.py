"""Measure what printed fonts and European 1s/7s do to an MNIST model (issue 4).

    ROBUSTMNIST_DATA=../shared/data python benchmarks/fonts_effect.py [--model out/lenet5-calib.pt]

Writes benchmarks/fonts_effect.json: accuracy per font category and severity, and for the
euro shifts the accuracy on the edited digits and the fraction of flagged 1s read as 7.
Sets are built with the same seed derivation as an evaluation (``make_set``), from the
ladders in shifts/parts/{fonts,euro}.toml.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from robustmnist.assets import shifts_dir
from robustmnist.data.datasets import load_mnist, to_float
from robustmnist.fileio import atomic_write_json, sha256_file
from robustmnist.models.checkpoint import model_from_checkpoint
from robustmnist.shifts.registry import get_shift
from robustmnist.shifts.sets import make_set
from robustmnist.shifts.suite import load_suite

HERE = Path(__file__).resolve().parent
FONT_SHIFTS = ["fonts", "fonts_sans", "fonts_serif", "fonts_mono", "fonts_ocr", "fonts_handwriting"]


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    out = [model(to_float(images[i : i + 4096])).argmax(dim=1) for i in range(0, len(images), 4096)]
    return torch.cat(out).numpy()


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """95% Wilson interval of a proportion (robust near 0 and 1, unlike the normal one)."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def rate(mask: np.ndarray) -> dict:
    k, n = int(mask.sum()), int(mask.size)
    return {"value": round(k / max(n, 1), 4), "ci95": wilson(k, n), "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="out/lenet5-calib.pt")
    ap.add_argument("--n", type=int, default=5000, help="digits per generated font set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "fonts_effect.json"))
    args = ap.parse_args()

    model = model_from_checkpoint(torch.load(args.model, weights_only=True))
    mnist = load_mnist("test")
    fonts_suite = load_suite(str(shifts_dir() / "parts" / "fonts.toml"))
    euro_suite = load_suite(str(shifts_dir() / "parts" / "euro.toml"))
    t0 = time.perf_counter()

    clean_pred = predict(model, mnist.images)
    y = mnist.labels
    result: dict = {
        "model": {"path": args.model, "sha256": sha256_file(args.model)},
        "seed": args.seed,
        "n_font_digits": args.n,
        "clean": {
            "accuracy": rate(clean_pred == y),
            "ones_accuracy": rate(clean_pred[y == 1] == 1),
            "ones_read_as_7": rate(clean_pred[y == 1] == 7),
            "sevens_accuracy": rate(clean_pred[y == 7] == 7),
        },
        "fonts": {},
        "euro": {},
    }

    for name in FONT_SHIFTS:
        shift = get_shift(name)
        rows = {}
        for s in range(1, 6):
            x, lab = make_set(shift, s, fonts_suite.params(name, s), None, None, args.n, args.seed)
            pred = predict(model, x)
            per_class = [round(float((pred[lab == k] == k).mean()), 3) for k in range(10)]
            rows[str(s)] = {"accuracy": rate(pred == lab), "per_class": per_class}
        result["fonts"][name] = rows
        print(name, " ".join(f"s{s}={r['accuracy']['value']:.3f}" for s, r in rows.items()))

    for name in ("euro_one", "euro_seven", "euro"):
        shift = get_shift(name)
        rows = {}
        for s in range(1, 6):
            x, lab = make_set(shift, s, euro_suite.params(name, s), mnist.images, y, len(y),
                              args.seed)
            pred = predict(model, x)
            rows[str(s)] = {
                "accuracy": rate(pred == lab),
                "ones_accuracy": rate(pred[lab == 1] == 1),
                "ones_read_as_7": rate(pred[lab == 1] == 7),
                "sevens_accuracy": rate(pred[lab == 7] == 7),
            }
        result["euro"][name] = rows
        print(name, " ".join(
            f"s{s}: 1s={r['ones_accuracy']['value']:.3f} 1->7={r['ones_read_as_7']['value']:.3f} "
            f"7s={r['sevens_accuracy']['value']:.3f};" for s, r in rows.items()))

    shift = get_shift("euro_fonts")
    rows = {}
    plain = get_shift("fonts_handwriting")
    for s in range(1, 6):
        x, lab = make_set(shift, s, euro_suite.params("euro_fonts", s), None, None, args.n,
                          args.seed)
        pred = predict(model, x)
        rows[str(s)] = {
            "accuracy": rate(pred == lab),
            "ones_accuracy": rate(pred[lab == 1] == 1),
            "ones_read_as_7": rate(pred[lab == 1] == 7),
            "sevens_accuracy": rate(pred[lab == 7] == 7),
        }
    # The same handwriting fonts without the European edits, for comparison.
    x, lab = make_set(plain, 1, {"category": "handwriting", "faces": "all"}, None, None, args.n,
                      args.seed)
    pred = predict(model, x)
    rows["plain_handwriting_fonts"] = {
        "accuracy": rate(pred == lab),
        "ones_accuracy": rate(pred[lab == 1] == 1),
        "ones_read_as_7": rate(pred[lab == 1] == 7),
        "sevens_accuracy": rate(pred[lab == 7] == 7),
    }
    result["euro"]["euro_fonts"] = rows
    print("euro_fonts", {k: (v["ones_read_as_7"]["value"], v["sevens_accuracy"]["value"])
                         for k, v in rows.items()})

    result["environment"] = {"torch": str(torch.__version__), "python": platform.python_version(),
                             "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_json(args.out, result)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
