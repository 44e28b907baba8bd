"""Photo framing speed by input size (issue 26): images/s of ``frame_real_report`` on one photo
at a time, as ``predict`` frames them, and of ``predict``'s read + frame of a JPEG file.

    python benchmarks/framing_speed.py --label after [--seconds 3] [--dump DIR]

The photo: an MNIST test digit (dark ink, ~40% of the height) on paper with a light gradient and
8-bit sensor noise, at 4000×3000 (a phone photo), 1000×1000 and 200×200, as a grey float32 array
(what ``predict`` reads), as an RGB uint8 array, and (4000×3000) as a JPEG file. Each case runs
for ``--seconds`` after one warm-up call, on one thread; images/s from the fastest call (the
machine is shared: others' load only ever slows a call) and from the median call. Run it from an older
checkout (PYTHONPATH) for the "before" numbers; runs merge into the JSON under ``runs[label]``.
Also recorded: the framed 28×28's sha256 and its correlation with the 200×200 photo's framing,
so a faster path is seen to frame the same digit. Timings are on a shared 2-core machine; the
load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = ((3000, 4000), (1000, 1000), (200, 200))  # (h, w)


def make_photo(h: int, w: int, digit: np.ndarray, seed: int = 0) -> np.ndarray:
    """Grey uint8 H×W: the digit (28×28, white on black) as dark ink on lit paper, noisy."""
    from PIL import Image

    side = int(0.4 * min(h, w) / 20 * 28)  # MNIST's 20-px box at 40% of the shorter side
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64) / 255
    yy, xx = np.mgrid[0:h, 0:w]
    paper = 0.85 - 0.25 * xx / w - 0.1 * yy / h  # light falling off across the page
    y0, x0 = (h - side) // 2, (w - side) // 2
    paper[y0 : y0 + side, x0 : x0 + side] *= 1 - 0.85 * np.clip(ink, 0, 1)
    noise = np.random.default_rng(seed).normal(0, 0.02, (h, w))
    return np.clip((paper + noise) * 255 + 0.5, 0, 255).astype(np.uint8)


def per_second(fn, seconds: float) -> tuple[float, float, int]:
    fn()  # warm-up: allocator, lazy imports
    times = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1.0 / min(times), 1.0 / statistics.median(times), len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dump", default=None, help="write the framed 28×28s here as .npy")
    ap.add_argument("--out", default=str(HERE / "framing_speed.json"))
    args = ap.parse_args()

    import torch
    from PIL import Image

    from robustmnist.data.datasets import load_mnist, to_uint8
    from robustmnist.data.photo import frame_real_report
    from robustmnist.fileio import atomic_write_json
    from robustmnist.run.predict import read_photo

    torch.set_num_threads(1)  # a shared 2-core box: spinning OpenMP threads measure the neighbours
    digit = load_mnist("test").images[0]  # a 7
    run: dict = {"cases": {}}
    framed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in SIZES:
            u8 = make_photo(h, w, digit)
            grey = u8.astype(np.float32) / 255
            rgb = np.repeat(u8[None, ..., None], 3, axis=-1)
            cases = {f"{w}x{h} grey float32": lambda g=grey: frame_real_report([g]),
                     f"{w}x{h} rgb uint8": lambda a=rgb: frame_real_report(a)}
            if h * w >= 10**6:
                path = Path(tmp) / f"{w}x{h}.jpg"
                Image.fromarray(u8).save(path, quality=90)
                cases[f"{w}x{h} jpeg read+frame"] = lambda p=str(path): frame_real_report([read_photo(p)[0]])
            for name, fn in cases.items():
                best, median, calls = per_second(fn, args.seconds)
                out = to_uint8(fn()[0])[0]
                framed[name] = out
                run["cases"][name] = {"images_per_s": round(best, 2), "images_per_s_median": round(median, 2),
                                      "calls": calls,
                                      "framed_sha256": hashlib.sha256(out.tobytes()).hexdigest()[:16]}
                print(name, run["cases"][name], flush=True)
    ref = framed["200x200 grey float32"].astype(np.float64).ravel()
    for name, out in framed.items():
        a = out.astype(np.float64).ravel()
        c = np.corrcoef(a, ref)[0, 1] if a.std() > 0 else 0.0
        run["cases"][name]["corr_with_200x200"] = round(float(c), 4)
    if args.dump:
        Path(args.dump).mkdir(parents=True, exist_ok=True)
        for name, out in framed.items():
            np.save(Path(args.dump) / (name.replace(" ", "_") + ".npy"), out)
    run["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    run["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                      "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    path = Path(args.out)
    doc = json.loads(path.read_text()) if path.is_file() else {
        "what": "photo framing speed: runs[label][cases][case][images_per_s] is one photo per call "
                "(frame_real_report, as predict frames), fastest call on one thread (and the median); "
                "corr_with_200x200 compares the framed 28x28 with the 200x200 photo's", "runs": {}}
    doc["runs"][args.label] = run
    atomic_write_json(path, doc)


if __name__ == "__main__":
    main()
