"""Are generated sets the same bytes whatever SIMD level torch's CPU kernels use?
``benchmarks/determinism.json``.

    python benchmarks/determinism.py [--suite default] [--n 10000] [--levels default,avx2,native]

Each level runs in its own subprocess (``ATEN_CPU_CAPABILITY`` is read once, when torch
loads), generates every set of the suite from the first n MNIST test digits (no cache) and
writes each set's sha256 and its generation time. The parent lists the sets whose bytes differ
from the native level's; with ``--pixels`` the differing sets are generated again and saved,
so the number of differing pixels and the largest difference can be counted.

"native" leaves ATEN_CPU_CAPABILITY unset (the machine's best level, e.g. AVX512).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _child(args: argparse.Namespace) -> None:
    import torch

    from robustmnist.data.datasets import load_mnist
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set, set_sha256
    from robustmnist.shifts.suite import load_suite

    mnist = load_mnist("test")
    suite = load_suite(args.suite)
    dump = set(args.dump.split(",")) if args.dump else set()
    out: dict = {"capability": torch.backends.cpu.get_cpu_capability(), "sets": {}}
    t_all = time.perf_counter()
    cpu_all = time.process_time()
    for name in suite.shift_names:
        shift = get_shift(name)
        for sev in suite.severities:
            sid = f"{name}@{sev}"
            if dump and sid not in dump:
                continue
            t = time.perf_counter()
            x, y = make_set(shift, sev, suite.params(name, sev), mnist.images, mnist.labels, args.n, seed=0)
            out["sets"][sid] = {"sha256": set_sha256(x, y), "wall_s": round(time.perf_counter() - t, 3)}
            if sid in dump:
                np.save(Path(args.dump_dir) / f"{sid}.npy", x)
    out["total_wall_s"] = round(time.perf_counter() - t_all, 2)
    out["total_cpu_s"] = round(time.process_time() - cpu_all, 2)
    Path(args.child_out).write_text(json.dumps(out))


def _run_level(level: str, args: argparse.Namespace, out: Path, dump: list[str] | None = None,
               dump_dir: str = "") -> dict:
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if level != "native":
        env["ATEN_CPU_CAPABILITY"] = level
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--child-out", str(out),
           "--suite", args.suite, "--n", str(args.n)]
    if dump:
        cmd += ["--dump", ",".join(dump), "--dump-dir", dump_dir]
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--levels", default="native,default,avx2")
    ap.add_argument("--pixels", action="store_true", help="count the differing pixels of differing sets")
    ap.add_argument("--label", default="", help="what code was measured (e.g. 'before', 'after')")
    ap.add_argument("--out", type=Path, default=HERE / "determinism.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--dump", default="", help=argparse.SUPPRESS)
    ap.add_argument("--dump-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return {}
    import torch

    levels = args.levels.split(",")
    load_before = os.getloadavg()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            runs[level] = _run_level(level, args, Path(tmp) / f"{level}.json")
            print(f"{level:8s} ({runs[level]['capability']}): {len(runs[level]['sets'])} sets in "
                  f"{runs[level]['total_wall_s']} s", flush=True)
        base = levels[0]
        differ: dict[str, list[str]] = {}
        for level in levels[1:]:
            differ[level] = [sid for sid, r in runs[base]["sets"].items()
                             if runs[level]["sets"][sid]["sha256"] != r["sha256"]]
            print(f"{level} vs {base}: {len(differ[level])} of {len(runs[base]['sets'])} sets differ: "
                  f"{', '.join(differ[level])}", flush=True)
        pixels: dict[str, dict] = {}
        if args.pixels:
            for level in levels[1:]:
                if not differ[level]:
                    continue
                dirs = {}
                for lv in (base, level):
                    d = Path(tmp) / f"dump-{lv}"
                    d.mkdir(exist_ok=True)
                    _run_level(lv, args, Path(tmp) / f"dump-{lv}.json", differ[level], str(d))
                    dirs[lv] = d
                for sid in differ[level]:
                    a = np.load(dirs[base] / f"{sid}.npy").astype(np.int16)
                    b = np.load(dirs[level] / f"{sid}.npy").astype(np.int16)
                    diff = np.abs(a - b)
                    pixels.setdefault(level, {})[sid] = {
                        "pixels": int((diff > 0).sum()), "images": int((diff > 0).any(axis=(1, 2)).sum()),
                        "max_abs": int(diff.max())}
    result = {
        "what": "sha256 of every generated set under each ATEN_CPU_CAPABILITY level (benchmarks/determinism.py)",
        "label": args.label,
        "suite": args.suite,
        "n": args.n,
        "machine": {"cpus": os.cpu_count(), "torch": str(torch.__version__), "python": platform.python_version(),
                    "platform": platform.platform(), "processor": platform.processor(),
                    "native_capability": torch.backends.cpu.get_cpu_capability(),
                    "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
                    "note": "timings on a shared 2-core machine with other jobs running"},
        "levels": {lv: {"capability": r["capability"], "total_wall_s": r["total_wall_s"],
                        "total_cpu_s": r["total_cpu_s"]} for lv, r in runs.items()},
        "baseline": base,
        "differing_sets": differ,
        "pixel_differences": pixels,
        "sha256": {sid: r["sha256"] for sid, r in runs[base]["sets"].items()},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
