"""Forward paths side by side against the loop users write: ``benchmarks/score_paths.json``.

    python benchmarks/score.py --paths [--models DIR] [--n-timing 4096] [--repeats 3]
                                       [--default-run] [--out PATH]

For mlp-784-256-128-64-10, lenet5, cnn-small and a TorchScript copy of cnn-small (trained
checkpoints from ``--models DIR`` as ``robustmnist train --torchscript`` writes them; untrained
zoo weights when a file is missing, said so in the JSON), in one run:

- ``plain_eager_loop``: what users write themselves: ``torch.no_grad()``, slices of 512 uint8
  images -> float / 255 -> ``model(x)`` -> argmax, on the model as they load it;
- ``engine.score`` on each forward path of models/fastpath.py, forced (eager, onnxruntime,
  torchscript-frozen, channels-last), and on the path the probe picks (``auto``, with its
  probe time).

Timings are interleaved (round r times every variant once) and the best of ``--repeats``
rounds on the first ``--n-timing`` test images is kept, so a busy neighbour slows all variants
alike. Exactness is checked on the full 10,000-image clean test set against the plain loop:
identical argmax for every image, and the largest logit difference.

``--default-run`` also times ``robustmnist eval MODEL`` with no flags on the TorchScript
cnn-small (a cold and a warm set cache) and records n, sets covered and wall time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from robustmnist.data.datasets import load_mnist
from robustmnist.models import fastpath
from robustmnist.models.load import LoadedModel, load_model
from robustmnist.models.zoo import build
from robustmnist.run.scoring import DEFAULT_BATCH, score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENTRIES = [  # (name in the JSON, file in --models, zoo arch for untrained weights)
    ("mlp-784-256-128-64-10", "mlp-784-256-128-64-10.pt", "mlp-784-256-128-64-10"),
    ("lenet5", "lenet5.pt", "lenet5"),
    ("cnn-small", "cnn-small.pt", "cnn-small"),
    ("cnn-small (TorchScript)", "cnn-small.ts.pt", "cnn-small"),
]
PATHS = (fastpath.EAGER, fastpath.ONNX, fastpath.FROZEN, fastpath.CHANNELS_LAST)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def _load(models_dir: Path | None, file: str, arch: str, tmp: Path) -> tuple[LoadedModel, str]:
    path = models_dir / file if models_dir else None
    if path is not None and path.is_file():
        return load_model(path), str(path)
    torch.manual_seed(0)
    net = build(arch).eval()
    path = tmp / file
    if file.endswith(".ts.pt"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 28, 28)), str(path))
    else:
        torch.save(net.state_dict(), path)
    return load_model(path), "untrained zoo weights"


def plain_eager_loop(module, images: np.ndarray, flat: bool, batch: int = 512) -> np.ndarray:
    """The loop in every MNIST tutorial: no engine, no preprocess spec, no fast path."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).float().div(255).unsqueeze(1)
            if flat:
                x = x.reshape(len(x), 784)
            out.append(module(x).numpy())
    return np.concatenate(out)


def forced(model: LoadedModel, name: str) -> LoadedModel:
    if name == fastpath.EAGER:
        return model
    build_ = fastpath.candidates(model.module, model.preprocess, model.device)[name]
    example = model.preprocess.apply_input(torch.zeros(DEFAULT_BATCH, 1, 28, 28))
    return dataclasses.replace(model, module=build_(example))


def bench_model(label: str, model: LoadedModel, source: str, clean: np.ndarray, n_timing: int,
                repeats: int) -> dict:
    flat = model.preprocess.layout == "784"
    timing = clean[:n_timing]
    variants = {"plain_eager_loop": lambda: plain_eager_loop(model.module, timing, flat)}
    built: dict[str, LoadedModel] = {}
    entry: dict = {"source": source, "format": model.format, "preprocess": model.preprocess.to_string(),
                   "paths": {}, "errors": {}}
    for name in PATHS:
        if name == fastpath.CHANNELS_LAST and flat:
            continue
        t = time.perf_counter()
        try:
            built[name] = forced(model, name)
        except Exception as exc:  # noqa: BLE001 - a path that cannot be built is a finding
            entry["errors"][name] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        entry["paths"][name] = {"build_s": round(time.perf_counter() - t, 3)}
        variants[name] = lambda m=built[name]: score(m, timing, DEFAULT_BATCH)
    t = time.perf_counter()
    auto = fastpath.accelerate(model, clean, DEFAULT_BATCH)
    entry["auto"] = {"chosen": auto.forward_path.name, "setup_s": round(time.perf_counter() - t, 3),
                     "probe": auto.forward_path.to_dict()}
    variants["auto"] = lambda: score(auto, timing, DEFAULT_BATCH)

    best = {k: float("inf") for k in variants}
    loads = []
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(repeats):
        loads.append(load1())
        for k, fn in variants.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    rates = {k: round(len(timing) / v) for k, v in best.items()}
    base = rates["plain_eager_loop"]
    entry["images_per_s"] = rates
    entry["speedup_vs_plain_loop"] = {k: round(v / base, 2) for k, v in rates.items()}
    entry["load1_during"] = loads

    # exactness on the whole clean test set, against the plain loop
    reference = plain_eager_loop(model.module, clean, flat)
    checks = {}
    for k, m in [*built.items(), ("auto", auto)]:
        logits = score(m, clean, DEFAULT_BATCH)
        checks[k] = {"argmax_identical": bool((logits.argmax(1) == reference.argmax(1)).all()),
                     "n_different": int((logits.argmax(1) != reference.argmax(1)).sum()),
                     "max_abs_logit_diff": float(np.abs(logits - reference).max())}
    entry["exact_on_clean_test"] = checks
    print(f"{label:26s} plain {base:7d}/s  " + "  ".join(
        f"{k} {v}/s ({entry['speedup_vs_plain_loop'][k]}x)" for k, v in rates.items() if k != "plain_eager_loop")
        + f"  [auto: {entry['auto']['chosen']}]", flush=True)
    return entry


def default_run(model_path: Path, cache: Path) -> dict:
    """``robustmnist eval MODEL`` with no flags, as a new user runs it (cold, then warm cache)."""
    env = {**os.environ, "ROBUSTMNIST_CACHE": str(cache)}
    runs = {}
    for label in ("cold_cache", "warm_cache"):
        with tempfile.TemporaryDirectory() as out:
            before = load1()
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "robustmnist", "eval", str(model_path), "--out", out],
                               capture_output=True, text=True, env=env, cwd=ROOT)
            wall = time.perf_counter() - t
            row: dict = {"wall_s": round(wall, 1), "returncode": r.returncode, "load1_before": before,
                         "load1_after": load1()}
            res = Path(out) / "results.json"
            if res.is_file():
                d = json.loads(res.read_text())
                ex = d.get("execution", {})
                row.update(n=d["suite"]["n"], sets=len(d["shifts"]), suite=d["suite"]["name"],
                           suite_sets=len(d["suite"]["shifts"]) * len(d["suite"]["severities"]),
                           n_reason=ex.get("n_reason"), estimated_s=ex.get("estimated_s"),
                           machine_factor=ex.get("machine_factor"), line=ex.get("line"),
                           forward_path=ex.get("forward_path", {}).get("name"), timings=d["timings"])
            else:
                row["stderr_tail"] = r.stderr[-1500:]
            runs[label] = row
            print(f"default run ({label}): {row.get('wall_s')} s, n={row.get('n')}, "
                  f"{row.get('sets')}/{row.get('suite_sets')} sets, load {before}", flush=True)
    return runs


def main(args) -> dict:
    models_dir = Path(args.models) if args.models else None
    clean = load_mnist("test").images
    result: dict = {
        "what": "engine.score per forward path vs the plain PyTorch eager loop users write (MNIST test)",
        "n_timing": args.n_timing, "n_exactness": len(clean), "repeats": args.repeats, "batch": DEFAULT_BATCH,
        "environment": {"torch": str(torch.__version__), "torch_threads": torch.get_num_threads(),
                        "cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "load1_at_start": load1(),
        "note": "shared 2-core machine: compare variants within a model (same run, interleaved), "
                "not absolute rates across runs",
        "models": {},
    }
    out = Path(args.out) if args.out else HERE / "score_paths.json"
    if args.default_run_only and out.is_file():  # keep the per-path table, redo the default run
        result = {**json.loads(out.read_text()), "default_run_started": result["started"]}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for label, file, arch in ENTRIES:
                model, source = _load(models_dir, file, arch, Path(tmp))
                result["models"][label] = bench_model(label, model, source, clean, args.n_timing, args.repeats)
    if args.default_run or args.default_run_only:
        ts = models_dir / "cnn-small.ts.pt" if models_dir else None
        if ts is None or not ts.is_file():
            result["default_run"] = {"skipped": "needs --models DIR with cnn-small.ts.pt"}
        else:
            with tempfile.TemporaryDirectory() as cache:
                result["default_run"] = default_run(ts, Path(cache))
    result["load1_at_end"] = load1()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result
