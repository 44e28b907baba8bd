"""Scoring throughput of ``robustmnist.engine.score``: ``benchmarks/score.json``.

    python benchmarks/score.py [--device cpu|cuda] [--batches 256,512,1024,2048,4096]
                               [--repeats 3] [--no-variants] [--compile] [--out PATH]
    python benchmarks/score.py --paths [--models DIR] [--default-run]   (score_paths.py)

Times ``score(model, images, batch)`` on the 10,000 MNIST test images for the tapering MLP
(784-256-128-64-10) and lenet5, with untrained zoo weights loaded through ``load_model`` (the
path a user's file takes), at several batch sizes: one warm-up pass, then the best of
``--repeats`` passes. Bars: >= 50,000 images/s for the MLP and >= 10,000 for lenet5 on CPU.

With ``--device cpu`` (the default) it also times *variants* of the CPU path that keep the
logits equal up to float rounding (the JSON records the largest absolute difference from the
plain path and whether every argmax agrees): one thread instead of all, oneDNN switched off,
channels_last, the uint8 -> float conversion done once for all images, ``torch.jit.freeze`` of
a traced module and ``torch.jit.optimize_for_inference`` (oneDNN conv+ReLU fusion and oneDNN
pooling), and with ``--compile`` ``torch.compile`` (its compile time is recorded too).

``--device cuda`` times the same on the GPU and writes ``score.cuda.json`` unless ``--out`` is
given; it records why it skipped when CUDA is absent.

On a shared CPU the wall clock measures the neighbours as much as the model, so the JSON
records the 1-minute load average before and after each measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robustmnist.data.datasets import load_mnist
from robustmnist.models.load import LoadedModel, load_model
from robustmnist.models.zoo import build
from robustmnist.run.scoring import DEFAULT_BATCH, score

HERE = Path(__file__).resolve().parent
ARCHS = {"mlp-784-256-128-64-10": 50_000, "lenet5": 10_000}  # arch -> CPU bar (images/s)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def best_rate(fn: Callable[[], object], n: int, repeats: int) -> dict:
    """images/s of ``fn`` (which scores n images): one warm-up pass, then the best of ``repeats``."""
    before = load1()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"images_per_s": round(n / min(times)), "best_s": round(min(times), 4),
            "all_s": [round(x, 4) for x in times], "load1_before": before, "load1_after": load1()}


def zoo_model(arch: str, folder: Path) -> LoadedModel:
    torch.manual_seed(0)
    path = folder / f"{arch}.pt"
    torch.save(build(arch).state_dict(), path)
    return load_model(path)


# -- variants: other ways to run the same network on CPU, for the engine to consider ---------------

class ChannelsLast(nn.Module):
    """The network with channels_last weights, fed channels_last input."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.inner(x)


def _traced(model: LoadedModel, batch: int) -> torch.jit.ScriptModule:
    example = model.preprocess.apply_input(torch.zeros(batch, 1, 28, 28))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation notices on torch 2.10+
        return torch.jit.trace(model.module.eval(), example, check_trace=False)


def jit_freeze(model: LoadedModel, batch: int) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(_traced(model, batch).eval())


def jit_optimize(model: LoadedModel, batch: int) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.optimize_for_inference(_traced(model, batch).eval())


def score_convert_once(model: LoadedModel, images: np.ndarray, batch: int) -> np.ndarray:
    """engine.score's loop, but the uint8 -> float [0, 1] conversion done once for all images."""
    n = len(images)
    out = np.empty((n, 10), dtype=np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
        for start in range(0, n, batch):
            logits = model.module(model.preprocess.apply_input(x[start:start + batch]))
            out[start:start + batch] = model.preprocess.to_logits(logits).numpy()
    return out


def variants(model: LoadedModel, images: np.ndarray, batch: int, repeats: int, compile_: bool) -> list[dict]:
    n = len(images)
    reference = score(model, images, batch)
    rows: list[dict] = []

    def record(name: str, fn: Callable[[], np.ndarray], note: str = "", setup_s: float | None = None):
        try:
            out = fn()
            row = {"variant": name, "batch": batch, **best_rate(fn, n, repeats)}
            row["max_abs_diff"] = float(np.abs(out - reference).max())
            row["argmax_agree"] = bool((out.argmax(1) == reference.argmax(1)).all())
        except Exception as exc:  # noqa: BLE001 - a variant that fails is a finding, not a crash
            row = {"variant": name, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]}
        if setup_s is not None:
            row["setup_s"] = round(setup_s, 3)
        if note:
            row["note"] = note
        rows.append(row)
        print(f"  {name:28s} {row.get('images_per_s', row.get('error'))}", flush=True)

    def with_module(module: nn.Module) -> LoadedModel:
        return dataclasses.replace(model, module=module)

    record("engine.score", lambda: score(model, images, batch))
    threads = torch.get_num_threads()
    if threads > 1:
        def one_thread() -> np.ndarray:
            torch.set_num_threads(1)
            try:
                return score(model, images, batch)
            finally:
                torch.set_num_threads(threads)
        record("one_thread", one_thread)

    def no_onednn() -> np.ndarray:
        with torch.backends.mkldnn.flags(enabled=False):
            return score(model, images, batch)
    record("onednn_off", no_onednn)

    if model.preprocess.layout != "784":
        cl = build(model.arch).eval()
        cl.load_state_dict(model.module.state_dict())
        record("channels_last", lambda m=with_module(ChannelsLast(cl)): score(m, images, batch))
    record("convert_once", lambda: score_convert_once(model, images, batch))
    for name, make in (("jit_freeze", jit_freeze), ("jit_optimize_for_inference", jit_optimize)):
        t = time.perf_counter()
        try:
            fast = with_module(make(model, batch))
        except Exception as exc:  # noqa: BLE001
            rows.append({"variant": name, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        setup = time.perf_counter() - t
        record(name, lambda m=fast: score(m, images, batch), setup_s=setup)
        # a traced graph must also serve the other batch sizes (the last, partial batch, and others)
        other = 4096 if batch != 4096 else 1024
        diff = float(np.abs(score(fast, images, other) - score(model, images, other)).max())
        rows[-1]["max_abs_diff_at_batch_" + str(other)] = diff
    if compile_:
        t = time.perf_counter()
        try:
            compiled = with_module(torch.compile(model.module, dynamic=True))
            score(compiled, images, batch)  # compiles (static shape + the partial last batch)
            setup = time.perf_counter() - t
            record("torch_compile", lambda m=compiled: score(m, images, batch), setup_s=setup,
                   note="setup_s includes the first (compiling) pass")
        except Exception as exc:  # noqa: BLE001
            rows.append({"variant": "torch_compile", "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batches", default="256,512,1024,2048,4096")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant-batches", default="1024,4096", help="batch sizes of the CPU variants")
    ap.add_argument("--no-variants", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to set up)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--paths", action="store_true", help="forward paths vs the plain eager loop "
                    "(benchmarks/score_paths.py) instead of the batch-size table")
    ap.add_argument("--models", default=None, help="--paths: folder of trained checkpoints")
    ap.add_argument("--n-timing", type=int, default=4096, help="--paths: images per timed pass")
    ap.add_argument("--default-run", action="store_true", help="--paths: also time `robustmnist eval "
                    "MODEL` with no flags on the TorchScript cnn-small")
    ap.add_argument("--default-run-only", action="store_true", help="--paths: redo only the default run, "
                    "keeping the per-path table of an earlier --out file")
    args = ap.parse_args(argv)
    if args.paths:
        import score_paths  # beside this file

        return score_paths.main(args)
    out_path = Path(args.out) if args.out else HERE / ("score.json" if args.device == "cpu" else "score.cuda.json")
    batches = [int(b) for b in args.batches.split(",")]

    result: dict = {
        "what": "robustmnist.engine.score throughput on MNIST test images (untrained zoo weights)",
        "n": args.n, "device": args.device, "repeats": args.repeats, "engine_default_batch": DEFAULT_BATCH,
        "environment": {
            "torch": str(torch.__version__), "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "onednn_available": torch.backends.mkldnn.is_available(),
            "python": platform.python_version(), "platform": platform.platform(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "bars_images_per_s": dict(ARCHS) if args.device == "cpu" else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "load1_at_start": load1(),
    }
    if args.device == "cuda":
        if not torch.cuda.is_available():
            result["skipped"] = "CUDA is not available on this machine"
            print(result["skipped"])
            out_path.write_text(json.dumps(result, indent=2) + "\n")
            return result
        result["environment"]["gpu"] = torch.cuda.get_device_name(0)

    images = load_mnist("test").images[: args.n]
    result["models"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch, bar in ARCHS.items():
            model = zoo_model(arch, Path(tmp))
            if args.device == "cuda":
                model = model.to(torch.device("cuda"))
            rows = {}
            for b in batches:
                rows[str(b)] = best_rate(lambda b=b, m=model: score(m, images, b), len(images), args.repeats)
                print(f"{arch:24s} batch {b:5d}  {rows[str(b)]['images_per_s']:8d} images/s "
                      f"(load {rows[str(b)]['load1_before']})", flush=True)
            best_b = max(rows, key=lambda k: rows[k]["images_per_s"])
            entry: dict = {
                "preprocess": model.preprocess.to_string(), "n_params": model.n_params,
                "by_batch": rows, "best_batch": int(best_b), "best_images_per_s": rows[best_b]["images_per_s"],
            }
            if str(DEFAULT_BATCH) in rows:
                entry["at_default_batch"] = rows[str(DEFAULT_BATCH)]["images_per_s"]
            if args.device == "cpu":
                entry["bar"] = bar
                entry["meets_bar_at_best_batch"] = rows[best_b]["images_per_s"] >= bar
                entry["meets_bar_at_default_batch"] = entry.get("at_default_batch", 0) >= bar
                if not args.no_variants:
                    entry["variants"] = []
                    for vb in (int(b) for b in args.variant_batches.split(",")):
                        print(f"{arch} variants at batch {vb}:", flush=True)
                        entry["variants"] += variants(model, images, vb, args.repeats, args.compile)
            result["models"][arch] = entry
    result["load1_at_end"] = load1()
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_path}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
