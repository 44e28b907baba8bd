"""Train the reference zoo and record what it scores: ``benchmarks/zoo.json``.

    python benchmarks/zoo.py [--out out/zoo] [--threads 1] [--full | --report-only | --demo-only]

Runs ``robustmnist zoo`` in three groups: the two small MLPs at their full published epochs,
the CNNs at half their epochs, and the 784-1000×3-10 MLP at a fifth of its 50 epochs (a full
run is ~20 CPU-minutes of matrix multiplies). ``--full`` runs everything at full epochs. Then
it trains lenet5 on Fashion-MNIST with the demo schedule, to show how much harder that data is
for an architecture that is at 99% on MNIST, and compares cnn-small with cnn-small-augment on
a few shifted sets, and times the demo's two schedules. The JSON records the epochs actually
run, the scale used, wall and CPU seconds and the machine's load, because on a shared CPU the
wall clock measures the neighbours as much as the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (entries, epochs scale) — the groups described in the docstring.
GROUPS = [
    ("mlp-784-50-50-10,mlp-784-256-128-64-10", 1.0),
    ("lenet5,cnn-small,cnn-small-augment", 0.5),
    ("mlp-784-1000x3-10", 0.2),
]


def run_zoo(out: Path, only: str, scale: float, threads: int) -> None:
    cli = "from robustmnist.cli import main; main()"  # the console script, minus PATH lookup
    args = ["zoo", "--out", str(out), "--only", only, "--epochs-scale", str(scale),
            "--threads", str(threads), "--device", "cpu"]
    cmd = [sys.executable, "-c", cli, *args]
    print("$ robustmnist", " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def train_fashion(out: Path, threads: int) -> None:
    from robustmnist.models.recipes import DEMO_SCHEDULES
    from robustmnist.train.loop import train

    schedule = {**DEMO_SCHEDULES["lenet5"], "threads": threads}
    run = train("lenet5", "fashion", device="cpu", **schedule)
    run.save(out / "lenet5-fashion.pt")


def demo_timing() -> dict:
    """The demo's two models on their DEMO_SCHEDULES: accuracy and seconds."""
    from robustmnist.models.recipes import DEMO_SCHEDULES
    from robustmnist.train.loop import train

    record = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    for arch, schedule in DEMO_SCHEDULES.items():
        t = train(arch, device="cpu", **schedule).checkpoint["training"]
        record[arch] = {**schedule, "test_accuracy": round(t["test_accuracy"], 5),
                        "seconds": t["train_seconds"], "cpu_seconds": t["train_cpu_seconds"]}
    record["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return record


def _training(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)["training"]


def fashion_record(out: Path, rows: list[dict]) -> dict:
    t = _training(out / "lenet5-fashion.pt")
    cfg = t["config"]
    return {
        "arch": "lenet5", "dataset": "fashion", "checkpoint": "lenet5-fashion.pt",
        **{k: cfg[k] for k in ("epochs", "lr", "batch_size", "optimizer", "schedule")},
        "test_accuracy": round(t["test_accuracy"], 5),
        "mnist_test_accuracy_same_arch": next(
            (r["test_accuracy"] for r in rows if r["name"] == "lenet5"), None),
        "seconds": t["train_seconds"], "cpu_seconds": t["train_cpu_seconds"],
    }


EFFECT_SHIFTS = ("gaussian_noise", "motion_blur", "ink_blot", "rotate", "elastic", "fonts",
                 "scan_border", "fog", "thin_stroke")


def augment_effect(out: Path, n: int = 2000, severity: int = 3) -> dict:
    """cnn-small vs cnn-small-augment on a few shifted sets: what augmentation bought.

    scan_border, fog and thin_stroke are families the augmented model never trained on.
    """
    import torch

    from robustmnist.data.datasets import load_mnist, to_float
    from robustmnist.models.checkpoint import model_from_checkpoint
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set
    from robustmnist.shifts.suite import load_suite

    names = ("cnn-small", "cnn-small-augment")
    models = {m: model_from_checkpoint(torch.load(out / f"{m}.pt", weights_only=True))
              for m in names}
    suite = load_suite("default")
    test = load_mnist("test")
    sets = {"clean": (test.images[:n], test.labels[:n])}
    for shift in EFFECT_SHIFTS:
        sets[shift] = make_set(get_shift(shift), severity, suite.params(shift, severity),
                               test.images, test.labels, n, seed=0)
    table = {}
    with torch.no_grad():
        for shift, (images, labels) in sets.items():
            x = to_float(images)
            table[shift] = {m: round(float((models[m](x).argmax(1).numpy() == labels).mean()), 4)
                            for m in names}
    return {"n": n, "severity": severity, "seed": 0, "suite": "default",
            "trained_on": "noise,blur,smear,geometric,fonts", "accuracy": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "zoo")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="every entry at its published epochs")
    ap.add_argument("--report-only", action="store_true",
                    help="no training: rebuild zoo.json from the checkpoints already in --out")
    ap.add_argument("--demo-only", action="store_true",
                    help="only re-time the demo schedules, into the existing zoo.json")
    args = ap.parse_args()
    os.environ.setdefault("ROBUSTMNIST_DATA", str(ROOT.parent / "shared" / "data"))
    dest = ROOT / "benchmarks" / "zoo.json"

    import torch

    t0 = time.perf_counter()
    if args.demo_only:
        result = json.loads(dest.read_text())
        result["demo"] = demo_timing()
        dest.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {dest}")
        return
    if args.report_only:
        previous = json.loads(dest.read_text()) if dest.is_file() else {}
        machine = previous.get("machine", {})
        command, total = previous.get("command"), previous.get("total_seconds")
        demo = previous.get("demo")
    else:
        load_before = os.getloadavg()
        for only, scale in GROUPS:
            run_zoo(args.out, only, 1.0 if args.full else scale, args.threads)
        train_fashion(args.out, args.threads)
        demo = demo_timing()
        machine = {
            "cpus": os.cpu_count(), "torch_threads": args.threads, "device": "cpu",
            "platform": platform.platform(), "torch": str(torch.__version__),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": "shared 2-core machine with other jobs running: wall seconds are inflated; "
                    "cpu_seconds (this process's CPU time) is the fairer cost",
        }
        command = "python benchmarks/zoo.py" + (" --full" if args.full else "")
        total = round(time.perf_counter() - t0, 1)

    rows = json.loads((args.out / "zoo.json").read_text())["models"]
    for row in rows:
        row["cpu_seconds"] = _training(args.out / row["checkpoint"])["train_cpu_seconds"]
    result = {
        "schema_version": 1,
        "what": "MNIST test accuracy of the reference zoo (robustmnist zoo) vs published figures",
        "command": command,
        "machine": machine,
        "validation": "10% of the training split held out (seeded); test set used once at the end",
        "models": rows,
        "fashion": fashion_record(args.out, rows),
        "augment_effect": augment_effect(args.out),
        "demo": demo,
        "total_seconds": total,
    }
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
