"""Which torch operations make a set's bytes depend on the CPU's SIMD level?

    python benchmarks/capability_bisect.py SHIFT SEVERITY [--n 500] [--levels native,default]

Generates one set in a subprocess per ``ATEN_CPU_CAPABILITY`` level while a
``TorchDispatchMode`` records every aten call: the operator, a hash of its tensor inputs and
of its outputs, and the line of robustmnist that made it. Walking the traces side by side, a
call whose inputs hash the same under both levels but whose output does not is a
capability-dependent kernel; the report lists each such call site once (the bisection the
issue asks for, done for every op at once instead of by halving the pipeline by hand).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --coarse: hash floats rounded to 2^-24, to find where a last-place difference becomes a big one
COARSE = "--coarse" in sys.argv


def _child(shift_name: str, severity: int, n: int, out: str) -> None:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from robustmnist.data.datasets import load_mnist
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set, set_sha256
    from robustmnist.shifts.suite import load_suite

    def digest(obj) -> str:
        h = hashlib.sha256()
        for t in tree_flatten(obj)[0]:
            if isinstance(t, torch.Tensor):
                t = t.detach()
                if COARSE and t.is_floating_point():  # ULP noise vanishes, decisions do not
                    t = torch.round(t.double() * 2.0**24)
                h.update(t.contiguous().cpu().numpy().tobytes())
            elif isinstance(t, torch.Generator):  # its repr is an address; its state is the input
                h.update(t.get_state().numpy().tobytes())
            else:
                h.update(repr(t).encode())
        return h.hexdigest()[:16]

    def where() -> str:
        for fr in reversed(traceback.extract_stack()[:-3]):
            if "robustmnist" in fr.filename and "benchmarks" not in fr.filename:
                return f"{Path(fr.filename).name}:{fr.lineno} {fr.line}"
        return "?"

    trace = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            before = digest((args, kwargs))  # before the call: in-place ops overwrite their input
            result = func(*args, **kwargs)
            # Uninitialised memory is noise, not a result.
            after = "empty" if "empty" in str(func) else digest(result)
            trace.append([str(func), before, after, where()])
            return result

    mnist = load_mnist("test")
    suite = load_suite("default")
    shift = get_shift(shift_name)
    params = suite.params(shift_name, severity)
    make_set(shift, severity, params, mnist.images, mnist.labels, n, seed=0)  # warm caches (glyph bank)
    with Recorder():
        x, y = make_set(shift, severity, params, mnist.images, mnist.labels, n, seed=0)
    Path(out).write_text(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                                     "sha256": set_sha256(x, y), "trace": trace}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shift")
    ap.add_argument("severity", type=int)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--levels", default="native,default")
    ap.add_argument("--child-out", default="")
    ap.add_argument("--coarse", action="store_true")
    args = ap.parse_args()
    if args.child_out:
        _child(args.shift, args.severity, args.n, args.child_out)
        return
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in args.levels.split(","):
            env = dict(os.environ)
            env.pop("ATEN_CPU_CAPABILITY", None)
            if level != "native":
                env["ATEN_CPU_CAPABILITY"] = level
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
            out = Path(tmp) / f"{level}.json"
            subprocess.run([sys.executable, __file__, args.shift, str(args.severity), "--n", str(args.n),
                            "--child-out", str(out)] + (["--coarse"] if args.coarse else []), env=env, check=True)
            runs[level] = json.loads(out.read_text())
    (a_name, a), (b_name, b) = list(runs.items())[:2]
    print(f"{args.shift} s{args.severity} n={args.n}: {a_name} ({a['capability']}) {a['sha256'][:12]}  "
          f"{b_name} ({b['capability']}) {b['sha256'][:12]}  "
          f"{'same' if a['sha256'] == b['sha256'] else 'DIFFERENT'}")
    seen = set()
    first_input_diff = None
    for i, (ra, rb) in enumerate(zip(a["trace"], b["trace"], strict=False)):
        if ra[0] != rb[0]:
            print(f"  traces diverge in control flow at call {i}: {ra[0]} vs {rb[0]} ({ra[3]})")
            break
        if ra[1] != rb[1] and first_input_diff is None:
            first_input_diff = i
        if ra[1] == rb[1] and ra[2] != rb[2] and (ra[0], ra[3]) not in seen:
            seen.add((ra[0], ra[3]))
            print(f"  call {i}: {ra[0]} at {ra[3]}: same inputs, different output")
    print(f"  {len(a['trace'])} calls traced; first call with differing inputs: {first_input_diff}")
    if first_input_diff is not None:
        for i in range(max(0, first_input_diff - 4), first_input_diff + 1):
            print(f"    {i}: {a['trace'][i][0]} at {a['trace'][i][3]}  in {a['trace'][i][1] == b['trace'][i][1]}"
                  f"  out {a['trace'][i][2] == b['trace'][i][2]}")


if __name__ == "__main__":
    main()
