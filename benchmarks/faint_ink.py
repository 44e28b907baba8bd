"""Faint ink under sensor noise (issue 26): does the photo framing still find the digit?

    python benchmarks/faint_ink.py --label after [--n 1000] [--model benchmarks/reference/lenet5.pt]
        [--camera-n 1000]

Test images: the first n MNIST test digits drawn by the camera renderer (shifts/camera.py: the
digit as ink on paper in a 96-px crop, uneven light, lens blur, signal-dependent Gaussian sensor
noise, 8-bit) with every digit's ink at one fixed darkness (the renderer's per-image ink draw set
to its minimum), on a grid of ink darkness × noise sigma. Each crop is framed by
``data.photo.frame_photo`` and compared with the clean digit framed like MNIST: the mean
correlation of the two 28×28s, a model's accuracy on the framed images, and how many framings
came back empty, doubtful or from the fallback. Blank paper (no digit) rendered the same way, and
at the hardest level of four camera shifts, checks the other side: how often a framing invents
a digit there. ``--camera-n`` also scores the model on the camera suite's sets (first n MNIST
test digits, seed 0), whose framing the fallback changes. Run it from an older checkout
(PYTHONPATH) for the "before" numbers; runs merge into the JSON under ``runs[label]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
INKS = (0.08, 0.12, 0.18, 0.25, 0.35, 1.0)  # ink darkness (1 = black); 1.0 is the control
NOISES = (0.01, 0.025, 0.04)  # sensor noise sigma (the camera suite goes up to 0.042)
# paper, light and texture as a moderate camera_light level: the ink is what is faint here
SCENE = dict(paper=0.75, texture=0.03, light=0.4, vignette=0.3, shadow=0.3)


def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-9)


def render(x: torch.Tensor, ink: float, noise: float, seed: int) -> torch.Tensor:
    """Raw photo crops N×1×96×96 (float64) of digits x at one ink darkness and noise sigma."""
    from robustmnist.shifts import camera

    g = torch.Generator().manual_seed(seed)
    p = {**camera._DEFAULTS, **SCENE, "ink": ink, "noise": noise}
    d = camera._draw(len(x), g)
    d["ink"].zero_()  # every digit at darkness `ink` exactly, not ink..1
    out = []
    for a in range(0, len(x), camera.CHUNK):
        sl = slice(a, a + camera.CHUNK)
        part = {k: v[sl] for k, v in d.items()}
        nz = torch.randn((len(x[sl]), 1, camera.CANVAS, camera.CANVAS), generator=g)
        out.append(camera._optics(camera._scene(x[sl], part, p), part, p, nz))
    return torch.cat(out)


def blank_paper(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Raw crops of paper with no digit: this benchmark's scene at each noise, and the hardest
    level of the camera shifts whose scene can pass for a digit (light, grain, marks, optics)."""
    from robustmnist.shifts import camera
    from robustmnist.shifts.suite import load_suite

    suite = load_suite("camera")
    scenes = {f"scene noise {s}": {**SCENE, "noise": s} for s in (0.0, *NOISES)}
    scenes |= {f"{name}@5": suite.params(name, 5)
               for name in ("camera_light", "camera_optics", "camera_marks", "camera_phone")}
    zeros = torch.zeros(n, 1, 28, 28)
    return {k: camera.photograph(zeros, torch.Generator().manual_seed(seed + 1), framed=False, **p)
            for k, p in scenes.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=str(HERE / "reference" / "lenet5.pt"))
    ap.add_argument("--camera-n", type=int, default=0, help="also score the camera suite on this many digits")
    ap.add_argument("--out", default=str(HERE / "faint_ink.json"))
    args = ap.parse_args()

    from robustmnist.data.datasets import load_mnist, to_float, to_uint8
    from robustmnist.data.framing import frame_mnist
    from robustmnist.data.photo import frame_photo
    from robustmnist.fileio import atomic_write_json, sha256_file
    from robustmnist.models.checkpoint import model_from_checkpoint

    torch.set_default_dtype(torch.float64)  # as sets are generated
    model = model_from_checkpoint(torch.load(args.model, map_location="cpu", weights_only=True)).eval().float()
    mnist = load_mnist("test")
    x = torch.from_numpy(mnist.images[: args.n]).to(torch.float64).div(255).unsqueeze(1)
    y = mnist.labels[: args.n]
    clean = frame_mnist(x)

    def accuracy(u8: np.ndarray) -> float:
        with torch.no_grad():
            return float((model(to_float(u8)).argmax(1).numpy() == y).mean())

    run: dict = {"n": args.n, "seed": args.seed, "scene": SCENE,
                 "model": {"checkpoint": Path(args.model).name, "sha256": sha256_file(args.model)},
                 "clean_accuracy": accuracy(to_uint8(clean)), "grid": []}
    t0 = time.perf_counter()
    for ink in INKS:
        for noise in NOISES:
            raw = render(x, ink, noise, args.seed)
            framed, why = frame_photo(raw)
            c = corr(framed, clean)
            row = {"ink": ink, "noise": noise, "corr_mean": round(float(c.mean()), 4),
                   "corr_median": round(float(c.median()), 4), "accuracy": round(accuracy(to_uint8(framed)), 4),
                   "empty": round(float(np.mean([bool(f.abs().amax() == 0) for f in framed])), 4),
                   "doubtful": round(float(np.mean([bool(w) for w in why])), 4),
                   "fallback": round(float(np.mean([any("fallback" in r for r in w) for w in why])), 4)}
            run["grid"].append(row)
            print(row, flush=True)
    run["blank"] = {}
    for name, raw in blank_paper(args.n, args.seed).items():
        framed, why = frame_photo(raw)
        inked = framed.flatten(1).amax(1) > 0
        sure = torch.tensor([not w for w in why])
        # "framed" is a digit made out of blank paper; "unflagged" is one the framing did not doubt
        run["blank"][name] = {"framed": round(float(inked.double().mean()), 4),
                              "unflagged": round(float((inked & sure).double().mean()), 4)}
        print(name, run["blank"][name], flush=True)
    if args.camera_n:
        from robustmnist.shifts import get_shift
        from robustmnist.shifts.sets import make_set
        from robustmnist.shifts.suite import load_suite

        suite = load_suite("camera")
        run["camera_suite"] = {"n": args.camera_n}
        for name in suite.shift_params:
            shift = get_shift(name)
            accs = []
            for sev in range(1, 6):
                images, labels = make_set(shift, sev, suite.params(name, sev), mnist.images, mnist.labels,
                                          args.camera_n, args.seed)
                with torch.no_grad():
                    accs.append(round(float((model(to_float(images)).argmax(1).numpy() == labels).mean()), 4))
            run["camera_suite"][name] = {"version": shift.version, "accuracy": accs}
            print(name, run["camera_suite"][name], flush=True)
    faint = [r for r in run["grid"] if r["ink"] < 1]
    run["faint_mean"] = {k: round(float(np.mean([r[k] for r in faint])), 4)
                         for k in ("corr_mean", "accuracy", "empty", "doubtful", "fallback")}
    run["control_mean"] = {k: round(float(np.mean([r[k] for r in run["grid"] if r["ink"] == 1])), 4)
                           for k in ("corr_mean", "accuracy", "empty", "doubtful", "fallback")}
    run["seconds"] = round(time.perf_counter() - t0, 1)
    run["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    run["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                      "cpu_threads": torch.get_num_threads()}
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {
        "what": "photo framing of faint ink under sensor noise: runs[label][grid] holds, per ink darkness "
                "and noise sigma, the mean correlation of the framed 28x28 with the clean digit framed "
                "like MNIST, a model's accuracy on the framed images, and the share framed empty, "
                "doubtful and by the fallback; runs[label][blank]: on paper with no digit, the share "
                "framed as a digit anyway and the share of those not flagged doubtful", "runs": {}}
    doc["runs"][args.label] = run
    atomic_write_json(out, doc)
    print(json.dumps({"faint": run["faint_mean"], "control": run["control_mean"]}))


if __name__ == "__main__":
    main()
