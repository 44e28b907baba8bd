"""Shift generation speed, side by side with albumentations, and the cost of an evaluation
beyond the model's own forward passes: ``benchmarks/shifts.json``.

    python benchmarks/shifts.py [--n 10000] [--model lenet5.pt] [--eval-n 10000] [--skip-eval]

Four parts, in one run so they share the machine's conditions:

1. ``default``: every set of the default suite (every shift × 5 severities) generated from
   the first n MNIST test digits, no cache: one set at a time on one thread (per set: the
   budget's table), then all of them through the pipeline eval uses (worker processes, one per
   CPU: ``default_pipelined``). Bar: the pipelined suite under 60 s on the 2-core machine.
2. ``mnist_c``: the mnist-c suite through the pipeline, against MNIST-C's own reference code
   (google-research/mnist-c, measured on this machine: about 290 s per 10,000 images for its
   15 corruptions). Bar: at least 20× faster.
3. ``albumentations``: each shift that has an albumentations 2.0.8 counterpart
   (benchmarks/albu_*.py: same ladder, same strength), ours batched vs theirs image by image,
   on the same n digits at severity 3, best of 3 runs each side. Bar: ours is never slower.
4. ``evaluation``: ``engine.evaluate`` of lenet5 on the whole default suite with a warm set
   cache; generation (here: reading and verifying the cached set) plus metrics and galleries
   against pure scoring time. Bar: at most 25% on top of scoring. Peak RSS bar: 2 GB.

CPU seconds of this process are recorded beside wall seconds: on a shared 2-core box the
wall clock also measures the neighbours.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COSTS = ROOT / "robustmnist" / "reference" / "generation_costs.json"
MNIST_C_REFERENCE_S = 290.0  # MNIST-C's reference code, 15 corruptions × 10,000 images, this machine
ALBU_FAMILIES = ("noise", "blur", "smear", "border", "geometric", "photometric", "digital", "stroke")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: KiB


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def generate_suite(suite_name: str, images: np.ndarray, labels: np.ndarray, n: int) -> dict:
    """Each set in turn, in this process, on one thread: one worker's seconds per set (the
    budget's table)."""
    from robustmnist.run.budget import one_thread

    with one_thread():
        return _generate_suite(suite_name, images, labels, n)


def _generate_suite(suite_name: str, images: np.ndarray, labels: np.ndarray, n: int) -> dict:
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set
    from robustmnist.shifts.suite import load_suite

    suite = load_suite(suite_name)
    per_shift: dict[str, dict] = {}
    t_all = clock()
    for name in suite.shift_names:
        shift = get_shift(name)
        t = clock()
        levels = []
        for sev in suite.severities:
            t_level = time.perf_counter()
            make_set(shift, sev, suite.params(name, sev), images, labels, n, seed=0)
            levels.append(round(time.perf_counter() - t_level, 3))
        wall, cpu = since(t)
        per_shift[name] = {"family": shift.family, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                           "levels_s": levels}
        print(f"  {suite_name:8s} {name:20s} {wall:7.2f} s ({len(suite.severities)} sets)", flush=True)
    wall, cpu = since(t_all)
    slowest = sorted(per_shift.items(), key=lambda kv: -kv[1]["wall_s"])[:5]
    return {"suite": suite_name, "n": n, "sets": len(suite.shift_names) * len(suite.severities),
            "total_wall_s": round(wall, 2), "total_cpu_s": round(cpu, 2),
            "slowest": [k for k, _ in slowest], "per_shift": per_shift, "peak_rss_mb": peak_rss_mb()}


def generate_pipelined(suite_name: str, images: np.ndarray, labels: np.ndarray, n: int) -> dict:
    """The whole suite the way eval and bench make it: through shifts.pipeline, its worker
    processes generating the next sets while this process takes (hashes and copies) each one."""
    from robustmnist.shifts.pipeline import SetPipeline, SetRequest
    from robustmnist.shifts.suite import load_suite

    suite = load_suite(suite_name)
    requests = [SetRequest(suite.shift(nm), sev, suite.params(nm, sev))
                for nm in suite.shift_names for sev in suite.severities]
    t = clock()
    with SetPipeline(requests, images, labels, n, seed=0, use_cache=False) as pipe:
        for i in range(len(requests)):
            pipe.get(i)
        workers = pipe.workers if pipe.parallel else 1
    wall, cpu = since(t)
    print(f"  {suite_name:8s} all {len(requests)} sets through the pipeline ({workers} processes): "
          f"{wall:.2f} s", flush=True)
    return {"suite": suite_name, "n": n, "sets": len(requests), "processes": workers,
            "total_wall_s": round(wall, 2), "this_process_cpu_s": round(cpu, 2)}


def write_generation_costs(result: dict) -> None:
    """The budget's table (robustmnist/budget.py): seconds per 10,000 images of each level.

    One line per shift so a re-measure reads as a diff of numbers.
    """
    default = result["default"]
    scale = 10_000 / default["n"]
    rows = []
    for name, row in default["per_shift"].items():
        levels = ", ".join(f"{s * scale:.3f}" for s in row["levels_s"])
        rows.append(f'  "{name}": [{levels}]')
    head = {"what": "seconds to generate 10,000 images of each level of each default-suite shift on one "
                    "thread, no cache (benchmarks/shifts.py part 1): one generation worker's time; "
                    "robustmnist.budget scales them to the machine it runs on and divides by the workers",
            "machine": result["machine"]["platform"], "torch": result["machine"]["torch"],
            "load_average_before": [round(x, 2) for x in result["machine"]["load_average_before"]],
            "total_one_thread_s": default["total_wall_s"],
            "total_pipelined_s": result["default_pipelined"]["total_wall_s"]}
    text = json.dumps(head, indent=1)[:-2] + ',\n "seconds_per_10k": {\n' + ",\n".join(rows) + "\n }\n}\n"
    json.loads(text)  # well-formed before it replaces the table
    COSTS.write_text(text)
    print(f"wrote {COSTS}")


def _albu_module(family: str):
    spec = importlib.util.spec_from_file_location(f"albu_{family}", HERE / f"albu_{family}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def best_of(repeats: int, fn) -> tuple[float, float]:
    """Best (wall, cpu) seconds of ``repeats`` runs: the least disturbed by the neighbours."""
    runs = []
    for _ in range(repeats):
        t = clock()
        fn()
        runs.append(since(t))
    return min(runs)


def albumentations_side_by_side(images: np.ndarray, labels: np.ndarray, n: int, severity: int,
                                repeats: int) -> dict:
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set
    from robustmnist.shifts.suite import load_suite

    suite = load_suite("default")
    rows = {}
    for family in ALBU_FAMILIES:
        for name, factory in _albu_module(family).EQUIVALENTS.items():
            params = suite.params(name, severity)
            transform = factory(severity)

            def theirs_fn(transform=transform):
                for img in images[:n]:
                    transform(image=np.ascontiguousarray(img[..., None]))

            ours, ours_cpu = best_of(repeats, lambda name=name, params=params: make_set(
                get_shift(name), severity, params, images, labels, n, seed=0))
            theirs, theirs_cpu = best_of(repeats, theirs_fn)
            rows[name] = {"family": family, "robustmnist_s": round(ours, 3), "albumentations_s": round(theirs, 3),
                          "robustmnist_cpu_s": round(ours_cpu, 3), "albumentations_cpu_s": round(theirs_cpu, 3),
                          "speedup": round(theirs / max(ours, 1e-9), 2)}
            print(f"  {name:20s} ours {ours:6.3f} s  albumentations {theirs:6.3f} s  "
                  f"({rows[name]['speedup']:.1f}×)", flush=True)
    slower = [k for k, r in rows.items() if r["speedup"] < 1.0]
    return {"n": n, "severity": severity, "repeats": repeats, "timing": "best of repeats, each side",
            "albumentations": _version("albumentations"), "shifts": rows,
            "slower_than_albumentations": slower, "peak_rss_mb": peak_rss_mb()}


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


def evaluation_overhead(model_path: str | None, eval_n: int) -> dict:
    from robustmnist.models.load import load_model
    from robustmnist.models.zoo import build
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.suite import load_suite

    suite = load_suite("default")
    with tempfile.TemporaryDirectory() as tmp:
        if model_path is None:  # untrained weights cost the same forward passes as trained ones
            torch.manual_seed(0)
            model_path = str(Path(tmp) / "lenet5.pt")
            torch.save(build("lenet5").state_dict(), model_path)
        model = load_model(model_path)
        os.environ["ROBUSTMNIST_CACHE"] = str(Path(tmp) / "cache")
        t = clock()
        cold = evaluate(model, suite, n=eval_n).result.timings
        cold_wall, _ = since(t)
        print(f"  cold cache: {cold_wall:.1f} s {cold}", flush=True)
        t = clock()
        warm = evaluate(model, suite, n=eval_n).result.timings
        warm_wall, warm_cpu = since(t)
        print(f"  warm cache: {warm_wall:.1f} s {warm}", flush=True)
    overhead = (warm["generate"] + warm["metrics"]) / warm["score"]
    images = eval_n * (1 + len(suite.shift_names) * len(suite.severities))
    return {"model": Path(model_path).name, "n": eval_n, "images_scored": images,
            "cold_cache": {"wall_s": round(cold_wall, 2), "timings": cold},
            "warm_cache": {"wall_s": round(warm_wall, 2), "cpu_s": round(warm_cpu, 2), "timings": warm},
            "scoring_images_per_s": round(images / warm["score"]),
            "overhead_over_scoring": round(overhead, 4), "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="images per generated set")
    ap.add_argument("--albu-severity", type=int, default=3, help="level timed side by side")
    ap.add_argument("--model", default=None, help="lenet5 checkpoint for part 4 (default: untrained weights)")
    ap.add_argument("--albu-repeats", type=int, default=3)
    ap.add_argument("--eval-n", type=int, default=10_000)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "shifts.json")
    ap.add_argument("--no-costs", dest="costs", action="store_false",
                    help=f"do not rewrite {COSTS.relative_to(ROOT)} (the budget's generation costs)")
    args = ap.parse_args(argv)
    os.environ.setdefault("ROBUSTMNIST_DATA", str(ROOT.parent / "shared" / "data"))

    from robustmnist.data.datasets import load_mnist

    test = load_mnist("test")
    images, labels = test.images[: args.n], test.labels[: args.n]
    result: dict = {
        "what": "shift generation and evaluation overhead (benchmarks/shifts.py)",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": str(torch.__version__), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_before": os.getloadavg()},
        "bars": {"default_total_s": 60.0, "mnist_c_speedup": 20.0, "albumentations_speedup": 1.0,
                 "evaluation_overhead": 0.25, "peak_rss_mb": 2048},
    }
    print("default suite, one set at a time on one thread:", flush=True)
    result["default"] = generate_suite("default", images, labels, args.n)
    print("default suite, pipelined:", flush=True)
    result["default_pipelined"] = generate_pipelined("default", images, labels, args.n)
    print("mnist-c suite:", flush=True)
    mnistc = generate_pipelined("mnist-c", images, labels, args.n)  # as eval makes it
    mnistc["reference_code_s_per_10000"] = MNIST_C_REFERENCE_S
    mnistc["speedup_vs_reference"] = round(MNIST_C_REFERENCE_S * args.n / 10_000 / mnistc["total_wall_s"], 1)
    result["mnist_c"] = mnistc
    print("albumentations side by side:", flush=True)
    result["albumentations"] = albumentations_side_by_side(images, labels, args.n, args.albu_severity,
                                                           args.albu_repeats)
    if not args.skip_eval:
        print("evaluation overhead (lenet5, default suite, warm cache):", flush=True)
        result["evaluation"] = evaluation_overhead(args.model, args.eval_n)
    result["machine"]["load_average_after"] = os.getloadavg()
    ev = result.get("evaluation", {})
    result["passes"] = {
        "default_under_60_s": result["default_pipelined"]["total_wall_s"] < 60.0,
        "mnist_c_20x": mnistc["speedup_vs_reference"] >= 20.0,
        "never_slower_than_albumentations": not result["albumentations"]["slower_than_albumentations"],
        "evaluation_overhead_at_most_25_percent": ev.get("overhead_over_scoring", 0) <= 0.25 if ev else None,
        "peak_rss_under_2_gb": peak_rss_mb() < 2048,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.n == 10_000 and args.costs:
        write_generation_costs(result)
    print(json.dumps(result["passes"], indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
