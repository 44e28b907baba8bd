"""Local bench vs ``bench --ray`` on one machine: ``benchmarks/ray_bench.json``.

    python benchmarks/ray_bench.py [--quick-n 2000] [--default-n 200] [--steps 100] [--cpus 2] [--repeats 2]

Six zoo architectures, each trained briefly (``--steps`` Adam steps of 128 MNIST digits, not
the zoo's schedules: the timing needs real weights, not good ones), are benchmarked on the
quick and the default suite, first locally, then as Ray tasks on a private local Ray instance
(``--cpus`` CPUs). As bench does, each model's fastest exact forward path is probed once
(models/fastpath.py) and both runs use it (the Ray workers follow the driver's choice). Both
read the same warm set cache (sets are generated before timing, as the engine asks for them)
and Ray's workers are started by a tiny first run (timed on its own), so the ratio is Ray's
steady overhead (object store, task scheduling) against parallelism over tasks. The JSON
records how the work split (tasks, bytes moved), whether the results were identical (whole
results.json apart from timings, environment, ``cached`` flags and where the work ran), and
the load average, because on a shared CPU the wall clock also measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ["mlp-784-50-50-10", "mlp-784-50x3-10", "mlp-784-100x3-10", "mlp-784-256-128-64-10", "lenet5",
         "cnn-small"]


def train_models(folder: Path, steps: int) -> list[Path]:
    from robustmnist.data.datasets import load_mnist
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
    from robustmnist.models.zoo import build

    folder.mkdir(parents=True, exist_ok=True)
    train = load_mnist("train")
    x = torch.from_numpy(train.images).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(train.labels).long()
    paths = []
    for arch in ARCHS:
        path = folder / f"{arch}.pt"
        paths.append(path)
        if path.is_file():
            continue
        torch.manual_seed(0)
        model = build(arch)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (128,), generator=g)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        save_checkpoint(path, make_checkpoint(arch, model.eval()))
    return paths


def warm_cache(suite, n: int) -> float:
    from robustmnist.data.datasets import load_mnist
    from robustmnist.shifts.registry import get_shift
    from robustmnist.shifts.sets import get_set, set_sha256

    clean = load_mnist("test")  # whole, as the engine passes it: nested sets read it by position
    sha = set_sha256(clean.images, clean.labels)
    t = time.perf_counter()
    for name in suite.shift_names:
        for sev in suite.severities:
            get_set(get_shift(name), sev, suite.params(name, sev), clean.images, clean.labels, n, 0,
                    source_sha=sha)
    return time.perf_counter() - t


def probe_paths(paths: list[Path]) -> tuple[list, dict]:
    """The models on their fastest exact forward paths, probed once as bench probes them."""
    from robustmnist.data.datasets import load_mnist
    from robustmnist.models.fastpath import accelerate
    from robustmnist.models.load import load_model

    images = load_mnist("test").images
    t = time.perf_counter()
    models = [accelerate(load_model(p), images) for p in paths]
    info = {"seconds": round(time.perf_counter() - t, 2),
            "chosen": {p.stem: m.forward_path.describe() for p, m in zip(paths, models, strict=True)}}
    return models, info


def warm_up_workers(models: list) -> float:
    """A first tiny run: Ray's worker processes import torch and robustmnist once per process
    (and build each model's forward path once), a one-off cost of a session (timed here) that
    would otherwise land on the first suite."""
    from robustmnist.run.ray import evaluate_many as evaluate_on_ray
    from robustmnist.shifts.suite import load_suite

    t = time.perf_counter()
    evaluate_on_ray(models, load_suite("quick").restrict(["rotate"], [1]), n=10)
    return time.perf_counter() - t


def comparable(run) -> dict:
    d = run.result.to_dict()
    for key in ("timings", "environment", "created"):
        d.pop(key)
    d["execution"].pop("ray", None)  # where the work ran
    for rec in d["shifts"]:
        rec.pop("cached")
    return d


def identical(a_runs, b_runs) -> bool:
    for a, b in zip(a_runs, b_runs, strict=True):
        if comparable(a) != comparable(b) or a.predictions.keys() != b.predictions.keys():
            return False
        if not all(np.array_equal(a.predictions[k], b.predictions[k]) for k in a.predictions):
            return False
    return True


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def bench_suite(paths: list[Path], models: list, suite_name: str, n: int, repeats: int) -> dict:
    from robustmnist.run.collect import evaluate_many
    from robustmnist.run.ray import Stats
    from robustmnist.run.ray import evaluate_many as evaluate_on_ray
    from robustmnist.shifts.suite import load_suite

    suite = load_suite(suite_name)
    n_sets = len(suite.shift_names) * len(suite.severities)
    record = {"suite": suite_name, "n": n, "sets": n_sets, "models": len(paths),
              "images_scored": len(paths) * n * (1 + n_sets), "load_average_before": load()}
    record["warm_cache_seconds"] = round(warm_cache(suite, n), 2)
    names = [p.stem for p in paths]

    # Alternating local and Ray runs, best of each: the neighbours' load swings by minutes.
    local_s, ray_s, same = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        local = evaluate_many(models, suite, n=n, names=names)
        local_s.append(round(time.perf_counter() - t, 2))
        stats = Stats()
        t = time.perf_counter()
        remote = evaluate_on_ray(models, suite, n=n, names=names, stats=stats)
        ray_s.append(round(time.perf_counter() - t, 2))
        same.append(identical(local, remote))
        record.setdefault("load_average_per_repeat", []).append(load())
    record.update(local_seconds=local_s, ray_seconds=ray_s,
                  ratio_ray_over_local_best=round(min(ray_s) / min(local_s), 2),
                  ratio_ray_over_local_per_repeat=[round(r / lo, 2) for r, lo in zip(ray_s, local_s, strict=True)],
                  identical_results=all(same))
    record["work"] = {
        "tasks_generate": stats.tasks_generate, "tasks_score": stats.tasks_score, "tasks_ood": stats.tasks_ood,
        "tasks_real": stats.tasks_real, "bytes_put_by_driver": stats.bytes_to_object_store,
        "bytes_sets_generated": stats.bytes_sets,
        "bytes_returned_to_driver": stats.bytes_returned, "nodes": stats.nodes, "cpus": stats.cpus,
        "gpus": stats.gpus, "device": stats.device,
    }
    record["load_average_after"] = load()
    print(json.dumps(record, indent=1), flush=True)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "ray-bench")
    ap.add_argument("--quick-n", type=int, default=2000)
    ap.add_argument("--default-n", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating local/Ray runs per suite")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "ray_bench.json")
    args = ap.parse_args()

    import ray

    t = time.perf_counter()
    paths = train_models(args.out / "models", args.steps)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - t
    try:
        models, probe = probe_paths(paths)
        warmup_s = warm_up_workers(models)
        suites = [bench_suite(paths, models, "quick", args.quick_n, args.repeats),
                  bench_suite(paths, models, "default", args.default_n, args.repeats)]
    finally:
        ray.shutdown()
    out = {
        "what": "local bench vs bench --ray (private local Ray instance) on the same machine, warm set cache",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "torch_threads_driver": torch.get_num_threads(), "ray_cpus": args.cpus,
                    "ray": ray.__version__, "torch": torch.__version__},
        "note": ("shared 2-core box (about 5 engineers running tests and benchmarks): wall times measure "
                 "the neighbours too, see the load averages; the default suite runs at --default-n images "
                 "per set, not 10,000, to fit"),
        "models": {"archs": ARCHS, "training": f"{args.steps} Adam steps (lr 2e-3, batch 128), seed 0",
                   "train_seconds": round(train_s, 1)},
        "forward_paths": probe,
        "ray_init_seconds": round(init_s, 2),
        "ray_worker_warmup_seconds": round(warmup_s, 2),
        "suites": suites,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
