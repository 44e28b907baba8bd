"""CUDA against CPU on the default suite, through the public run layer: ``benchmarks/gpu_check.json``.

    python benchmarks/gpu_check.py [--models A.pt B.pt] [--epochs-scale 0.2] [--n 10000 | --quick]
                                   [--require-cuda] [--no-tf32] [--fast] [--cache-dir DIR] [--out PATH]

Trains the zoo's lenet5 and cnn-small with their recipes (models/recipes.py, epochs scaled by
``--epochs-scale``) into ``--work`` (a temporary folder unless given), or takes ``--models``
checkpoints. Each model is loaded with ``robustmnist.api.load_model(path).to(device)`` and both are
scored by ``robustmnist.run.collect.evaluate_many`` on clean MNIST and every set of the default
suite, first on CUDA, then on CPU. The check: the same argmax for every image of every set and
the same accuracies. A near-tie can flip under a different summation order, so disagreements are
counted, not fatal, up to ``--argmax-tol`` (fraction of images) and ``--acc-tol`` (points on any
set); beyond either the script exits 1. Speed: images/s is scored images over the "score" stage
seconds (result.timings), wall time is the whole evaluate_many call (generation included).

``fast=False`` on both devices by default, so both run the same eager PyTorch module: the fast
path picks per device (TorchScript, onnxruntime on CPU), and would compare paths, not devices.
``--fast`` times what a user gets instead. The CUDA leg generates the sets into a private cache
(``--cache-dir`` to use another) and the CPU leg reads them back: both legs score the same bytes,
generation is paid once, and the CPU leg's cores go to scoring. So the CUDA wall time includes
generation and the CPU one does not; images/s excludes it on both.

Without CUDA it says so, still runs the CPU leg (so the script itself is checked), writes the JSON
with ``"cuda": "not available"`` and exits 0; 1 with ``--require-cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from score import cpu_model  # benchmarks/score.py: the script's own folder is on sys.path

from robustmnist.api import load_model
from robustmnist.data.datasets import load_mnist
from robustmnist.models.recipes import scaled_epochs, zoo_entries
from robustmnist.run.collect import evaluate_many
from robustmnist.run.scoring import DEFAULT_BATCH, score
from robustmnist.shifts.suite import load_suite

HERE = Path(__file__).resolve().parent
ZOO_NAMES = ("lenet5", "cnn-small")


def train_zoo(folder: Path, epochs_scale: float, seed: int) -> list[Path]:
    """lenet5 and cnn-small as ``robustmnist zoo --only ... --epochs-scale S`` trains them."""
    from robustmnist.train.loop import train

    paths = []
    for entry in zoo_entries(list(ZOO_NAMES)):
        settings = dict(entry.settings)
        settings["epochs"] = scaled_epochs(settings["epochs"], epochs_scale)
        run = train(entry.arch, "mnist", seed=seed, device="auto", **settings)
        if run.diverged:
            raise SystemExit(f"{entry.name} diverged while training: {run.warnings[-1]}")
        path = folder / f"{entry.name}.pt"
        run.save(path)
        print(f"trained {entry.name}: {settings['epochs']} epoch(s), test accuracy "
              f"{100 * run.test_accuracy:.2f}% in {run.seconds:.0f} s", flush=True)
        paths.append(path)
    return paths


def run_leg(paths: list[Path], device: str, suite, args: argparse.Namespace) -> dict:
    """Every model scored on every set on one device: wall s, images/s, and the raw outputs."""
    dev = torch.device(device)
    models = [load_model(str(p)).to(dev) for p in paths]
    warm = load_mnist("test").images[:DEFAULT_BATCH]
    for m in models:  # CUDA context, kernel loading and allocator growth stay out of the timing
        score(m, warm)
    done = [0]

    def progress(kind: str, advance: int, status: str) -> None:
        if kind == "set" and advance:
            done[0] += 1
            if done[0] % 50 == 0:
                print(f"  {device}: {done[0]} sets", flush=True)

    t = time.perf_counter()
    outs = evaluate_many(models, suite, n=args.n, fast=args.fast, use_cache=True,
                         names=[p.stem for p in paths], progress=progress)
    wall = time.perf_counter() - t
    per_model = {}
    for p, out in zip(paths, outs, strict=True):
        images = sum(len(v) for v in predictions(out).values())
        score_s = out.result.timings["score"]
        # both models share the call's wall clock; "stages_s" is this model's own share of it
        per_model[p.stem] = {"stages_s": round(out.result.timings["total"], 2), "score_s": round(score_s, 3),
                             "generate_s": round(out.result.timings["generate"], 2),
                             "scored_images": images, "images_per_s": round(images / score_s),
                             "clean_accuracy": out.result.clean.accuracy}
        print(f"  {device}: {p.stem:12s} {images} images, {images / score_s:,.0f} images/s, "
              f"clean {100 * out.result.clean.accuracy:.2f}%, wall {wall:.1f} s", flush=True)
    cached = sum(r.cached for r in outs[0].result.shifts)
    print(f"  {device}: {cached} of {len(outs[0].result.shifts)} sets read from the cache", flush=True)
    return {"device": device, "wall_s": round(wall, 2), "sets_from_cache": cached, "sets": len(outs[0].result.shifts),
            "models": per_model, "outputs": outs}


def predictions(out) -> dict[str, np.ndarray]:
    """Set id -> per-image argmax; the labels the collector keeps beside them are left out."""
    return {k: v for k, v in out.predictions.items() if k != "labels" and not k.endswith(":labels")}


def accuracies(out) -> dict[str, float]:
    accs = {"clean": out.result.clean.accuracy}
    accs.update({f"{r.name}@{r.severity}": r.accuracy for r in out.result.shifts})
    return accs


def compare(test_out, ref_out) -> dict:
    """Per-image argmax and per-set accuracy of one model on the device under test vs on CPU."""
    a, b = predictions(test_out), predictions(ref_out)
    if a.keys() != b.keys():
        raise SystemExit(f"the two legs scored different sets: {sorted(a.keys() ^ b.keys())[:5]}")
    differ = {k: int((a[k] != b[k]).sum()) for k in a}
    total = sum(len(v) for v in a.values())
    acc_a, acc_b = accuracies(test_out), accuracies(ref_out)
    acc_diff = {k: round(100 * abs(acc_a[k] - acc_b[k]), 4) for k in acc_a}
    worst = max(acc_diff, key=acc_diff.get)
    return {
        "images": total, "sets": len(a),
        "argmax_disagreements": sum(differ.values()),
        "argmax_disagreement_fraction": sum(differ.values()) / total,
        "sets_with_disagreements": {k: v for k, v in differ.items() if v},
        "accuracy_sets_differing": sum(1 for v in acc_diff.values() if v),
        "max_accuracy_diff_points": acc_diff[worst], "max_accuracy_diff_set": worst,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path, default=None, help="checkpoints (default: train the zoo's "
                    + " and ".join(ZOO_NAMES) + ")")
    ap.add_argument("--epochs-scale", type=float, default=0.2, help="multiplies the zoo recipes' epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="keep the trained checkpoints here")
    ap.add_argument("--n", type=int, default=None, help="images per set (default 10,000)")
    ap.add_argument("--quick", action="store_true", help="smoke test: --n 1000")
    ap.add_argument("--acc-tol", type=float, default=0.1, help="largest accuracy difference, points")
    ap.add_argument("--argmax-tol", type=float, default=1e-4, help="largest share of differing argmaxes")
    ap.add_argument("--require-cuda", action="store_true", help="exit 1 where CUDA is not available")
    ap.add_argument("--no-tf32", action="store_true", help="full float32 convolutions and matmuls on CUDA")
    ap.add_argument("--fast", action="store_true", help="each device's fastest exact path, not eager")
    ap.add_argument("--cache-dir", type=Path, default=None, help="set cache (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=HERE / "gpu_check.json")
    # runs the device-under-test leg on another device: `--second-device cpu` checks the
    # comparison itself on a machine without CUDA (identical legs -> 0 disagreements)
    ap.add_argument("--second-device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.n = args.n or (1000 if args.quick else 10_000)
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    cuda = torch.cuda.is_available()
    test_device = args.second_device
    result: dict = {
        "what": "CUDA vs CPU: per-image argmax, accuracies and speed of two zoo models on the default "
                "suite through robustmnist.run.collect.evaluate_many (benchmarks/gpu_check.py)",
        "cuda": torch.cuda.get_device_name(0) if cuda else "not available",
        "device_under_test": test_device, "n": args.n, "fast": args.fast,
        "set_cache": str(args.cache_dir) if args.cache_dir else "temporary",
        "epochs_scale": None if args.models else args.epochs_scale,
        "tolerances": {"accuracy_points": args.acc_tol, "argmax_fraction": args.argmax_tol},
        "environment": {
            "torch": str(torch.__version__), "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if test_device == "cuda" and not cuda:
        print("CUDA is not available on this machine: only the CPU leg runs, nothing is compared.", flush=True)
        if args.require_cuda:
            result["passed"] = False
            args.out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"--require-cuda: failing. wrote {args.out}")
            return result
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.work or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["ROBUSTMNIST_CACHE"] = str(args.cache_dir or Path(tmp) / "sets")  # read per call
        t = time.perf_counter()
        paths = args.models or train_zoo(folder, args.epochs_scale, args.seed)
        result["train_s"] = None if args.models else round(time.perf_counter() - t, 1)
        result["models"] = {p.stem: str(p) for p in paths}
        suite = load_suite("default")
        # leg name -> device; the leg under test is named "second" when it is simulated on CPU too
        test_leg = "second" if test_device == "cpu" else test_device
        legs = {test_leg: test_device, "cpu": "cpu"} if cuda or test_device != "cuda" else {"cpu": "cpu"}
        runs = {}
        for leg, device in legs.items():
            print(f"scoring {len(paths)} models on {device} ({leg} leg), n={args.n}", flush=True)
            runs[leg] = run_leg(paths, device, suite, args)
    result["legs"] = {d: {k: v for k, v in r.items() if k != "outputs"} for d, r in runs.items()}
    passed = True
    if len(runs) == 2:
        result["comparison"] = {}
        for i, p in enumerate(paths):
            c = compare(runs[test_leg]["outputs"][i], runs["cpu"]["outputs"][i])
            c["passed"] = (c["max_accuracy_diff_points"] <= args.acc_tol
                           and c["argmax_disagreement_fraction"] <= args.argmax_tol)
            passed &= c["passed"]
            result["comparison"][p.stem] = c
            print(f"{p.stem}: {c['argmax_disagreements']} of {c['images']} argmaxes differ "
                  f"({100 * c['argmax_disagreement_fraction']:.4f}%) in {len(c['sets_with_disagreements'])} "
                  f"of {c['sets']} sets; largest accuracy difference {c['max_accuracy_diff_points']} points "
                  f"({c['max_accuracy_diff_set']}): {'ok' if c['passed'] else 'FAIL'}", flush=True)
    else:
        result["comparison"] = None
    result["passed"] = passed
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'passed' if passed else 'FAILED'} in {result['total_s']} s; wrote {args.out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:])["passed"] else 1)
