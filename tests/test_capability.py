"""Sets are the same bytes whatever instruction set torch's CPU kernels use.

``ATEN_CPU_CAPABILITY`` is read once, when torch loads, so each level runs in its own
subprocess. The shifts below are the ones whose bytes depended on it before generation ran
in float64 (vectorised exp/sin/cos, fused multiply-add in addcmul and grid_sample, randn's
AVX2 path, bicubic upsampling), one of every family besides, fonts and euro included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SETS = [
    ("gaussian_noise", 5), ("speckle_noise", 4), ("gaussian_blur", 4), ("motion_blur", 3),
    ("ink_blot", 5), ("coffee_stain", 3), ("smudge", 2), ("strike_through", 4), ("shadow", 4),
    ("rotate", 3), ("shear", 5), ("elastic", 5), ("fog", 3), ("jpeg", 3), ("pixelate", 3),
    ("thick_stroke", 4), ("fonts", 3), ("fonts_mono", 3), ("fonts_serif", 5),
    ("euro", 4), ("euro_one", 4), ("euro_fonts", 4),
]
N = 300  # one chunk: enough to catch the differences seen before (1-1,100 pixels per 500 images)

_CHILD = """
import json, sys
import torch
from robustmnist.data.datasets import load_mnist
from robustmnist.shifts import get_shift
from robustmnist.shifts.sets import make_set, set_sha256
from robustmnist.shifts.suite import load_suite
mnist = load_mnist("test")
suite = load_suite("default")
out = {"capability": torch.backends.cpu.get_cpu_capability()}
for name, sev in json.loads(sys.argv[1]):
    x, y = make_set(get_shift(name), sev, suite.params(name, sev), mnist.images, mnist.labels, int(sys.argv[2]), 0)
    out[f"{name}@{sev}"] = set_sha256(x, y)
print(json.dumps(out))
"""


def _start(level: str | None, data_root: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if level:
        env["ATEN_CPU_CAPABILITY"] = level
    env["ROBUSTMNIST_DATA"] = str(data_root)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # The levels run side by side, one thread each: a 2-core box does two at once instead of
    # spinning two OpenMP threads per process (the instruction set, not the thread count, is tested).
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(SETS), str(N)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.mirror
def test_sets_do_not_depend_on_the_cpu_instruction_set(mirror_root):
    import torch

    levels = ["default", "avx2", None] if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else [
        "default", None]
    procs = {str(lv): _start(lv, mirror_root) for lv in levels}
    try:
        runs = {lv: _result(p) for lv, p in procs.items()}
    finally:
        for p in procs.values():  # a failed level stops the others too
            if p.poll() is None:
                p.kill()
                p.wait()
    native = runs["None"]
    for run in runs.values():
        differ = [sid for sid in native if sid != "capability" and run[sid] != native[sid]]
        assert not differ, f"{run['capability']} vs native {native['capability']}: {differ} differ"
