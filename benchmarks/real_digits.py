"""Real digits beside the suite: zoo models on scikit-learn's digits and on a folder of printed
digits (rendered from the pinned fonts as dark-on-light PNGs of various sizes), with the
synthetic shifts each real set looks most like. Writes benchmarks/real_digits.json.

    python benchmarks/real_digits.py MODEL.pt [MODEL.pt ...] [--n 1000] [--folder DIR]

Numbers, not timings, are the point; timings are recorded with the load average (busy box).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]


def render_printed(out: Path, per_face: int = 1, seed: int = 0) -> Path:
    """Class sub-folders 0-9: every upright pinned face (not handwriting) × digits × per_face
    sizes; grey paper, dark ink, canvases from 30 to 160 px."""
    from robustmnist.shifts.glyphs import load_manifest

    rng = np.random.default_rng(seed)
    faces = [f for f in load_manifest() if not f.italic and f.category != "handwriting"]
    for i, face in enumerate(faces):
        for k in range(10):
            for j in range(per_face):
                size = int(rng.integers(20, 110))
                w, h = int(size * rng.uniform(0.9, 1.6)), int(size * rng.uniform(1.2, 1.7))
                font = ImageFont.truetype(str(ROOT / "fonts" / face.file), size)
                im = Image.new("L", (w, h), int(rng.integers(190, 250)))
                ImageDraw.Draw(im).text((w / 2, h / 2), str(k), fill=int(rng.integers(0, 70)), font=font,
                                        anchor="mm")
                d = out / str(k)
                d.mkdir(parents=True, exist_ok=True)
                im.save(d / f"f{i:02d}-{j}.png")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--suite", default="default")
    ap.add_argument("--severity", default="1,3,5")
    ap.add_argument("--folder", default=None, help="printed-digit folder (made if missing)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "real_digits.json"))
    args = ap.parse_args()

    from robustmnist.models.load import load_model
    from robustmnist.run.collect import evaluate_many
    from robustmnist.shifts.suite import load_suite

    folder = Path(args.folder or "/tmp/robustmnist-printed")
    if not folder.is_dir():
        render_printed(folder)
    n_printed = sum(1 for _ in folder.rglob("*.png"))
    suite = load_suite(args.suite).restrict(None, [int(s) for s in args.severity.split(",")])
    models = [load_model(m) for m in args.models]
    load0 = os.getloadavg()
    t = time.perf_counter()
    from robustmnist.data.real import load_real

    # --n limits the synthetic sets; the real sets are scored whole (1,797 digits, every PNG)
    real_sets = [load_real("digits"), load_real(f"folder:{folder}")]
    runs = evaluate_many(models, suite, n=args.n, real_sets=real_sets, names=[Path(m).stem for m in args.models])
    wall = time.perf_counter() - t
    rows = []
    for run in runs:
        r = run.result
        rows.append({
            "model": r.model.name, "clean_accuracy": r.clean.accuracy,
            "mean_shifted_accuracy": r.summary.get("mean_shifted_accuracy"),
            "real": [{"name": "printed-folder" if x.name.startswith("folder:") else x.name, "n": x.n,
                      "accuracy": x.accuracy, "accuracy_ci": x.accuracy_ci, "ece": x.ece,
                      "closest_shifts": x.closest_shifts[:3], "sha256": x.sha256} for x in r.real],
            "timings_s": r.timings,
        })
    doc = {"what": "zoo models on real digit sets (sklearn digits; printed digits rendered from the pinned "
                   f"fonts, {n_printed} PNGs) and the closest synthetic shifts",
           "suite": suite.name, "severities": list(suite.severities), "n": args.n,
           "results": rows, "wall_s": round(wall, 1),
           "loadavg_before": load0, "loadavg_after": os.getloadavg(), "cpu": platform.processor(),
           "note": "timings on a shared 2-core box; accuracies do not depend on load"}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for row in rows:
        for x in row["real"]:
            tops = ", ".join(f"{c['name']} s{c['severity']} ({c['accuracy']:.1%}, d={c['distance']:.3f})"
                             for c in x["closest_shifts"])
            print(f"{row['model']:20s} {x['name']:15s} n={x['n']:5d} acc {x['accuracy']:.2%}  ~ {tops}")


if __name__ == "__main__":
    main()
