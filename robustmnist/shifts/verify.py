"""``robustmnist shifts verify``: regenerate sets and compare them with the pinned fingerprints.

The pins are the per-chunk digests stored in the mCE reference (10,000 images per set of the
default suite). A set that differs is regenerated once more in a subprocess with torch's
portable kernels (``ATEN_CPU_CAPABILITY=default``): when those reproduce the pin, the
difference is this CPU's vectorised kernels, and comparing the two gives the exact number of
pixels that differ and by how many levels. When they do not, the cause is elsewhere (another
torch, another source data) and only the differing chunks can be named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fingerprint import chunk_digests, compare_prefix
from .pipeline import SetPipeline, SetRequest
from .registry import get_shift
from .sets import make_chunk
from .suite import Suite


@dataclass
class SetCheck:
    set_id: str
    status: str  # match | differ | unpinned
    detail: str = ""
    pixels: int | None = None  # differing pixels, when the portable kernels reproduce the pin
    max_abs: int | None = None  # largest difference, in 8-bit levels
    images: int | None = None  # images with any differing pixel


def verify_suite(suite: Suite, pins, images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0,
                 progress: Callable[[str], None] | None = None, pixels: bool = True) -> list[SetCheck]:
    """Check every (shift, severity) of ``suite`` at ``n`` images against ``pins`` (a Reference)."""
    checks: list[SetCheck | None] = []
    redo: list[tuple[str, int, list[int]]] = []
    todo: list[tuple[int, SetRequest, object]] = []  # (place in checks, request, pin)
    for name in suite.shift_names:
        shift = get_shift(name)
        for sev in suite.severities:
            params = suite.params(name, sev)
            rs = pins.sets.get((name, sev))
            if rs is None or not rs.chunks:
                checks.append(SetCheck(f"{name}@{sev}", "unpinned", "no pinned fingerprint for this set"))
            elif rs.version != shift.version or (rs.params is not None and rs.params != params):
                checks.append(SetCheck(f"{name}@{sev}", "unpinned", "the pin is of another version or ladder"))
            else:
                todo.append((len(checks), SetRequest(shift, sev, params), rs))
                checks.append(None)
    # regenerated in worker processes (the pipeline eval uses), never read from the cache
    with SetPipeline([r for _, r, _ in todo], images, labels, n, seed, use_cache=False) as sets:
        for i, (at, r, rs) in enumerate(todo):
            sid = f"{r.shift.name}@{r.severity}"
            if progress:
                progress(sid)
            made = sets.get(i)
            m = compare_prefix(made.chunks or chunk_digests(made.images, made.labels), n, list(rs.chunks), rs.n)
            if m.differs:
                checks[at] = SetCheck(sid, "differ", m.describe())
                redo.append((r.shift.name, r.severity, m.differing_chunks))
            else:
                checks[at] = SetCheck(sid, "match", m.describe())
    if pixels and redo:
        _pixel_differences(checks, redo, suite, pins, images, labels, seed)
    return checks


def _pixel_differences(checks, redo, suite, pins, images, labels, seed) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"sets": [[nm, sv, ks, suite.params(nm, sv)] for nm, sv, ks in redo],
                                       "seed": seed, "source": str(Path(tmp) / "source.npz"),
                                       "out": str(Path(tmp) / "portable.npz")}))
        np.savez(Path(tmp) / "source.npz", images=images, labels=labels)
        env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
        proc = subprocess.run([sys.executable, "-m", "robustmnist.shifts.verify", str(request)], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return
        with np.load(Path(tmp) / "portable.npz", allow_pickle=False) as z:
            portable = {k: z[k] for k in z.files}
    by_id = {c.set_id: c for c in checks}
    for name, sev, ks in redo:
        c = by_id[f"{name}@{sev}"]
        rs = pins.sets[(name, sev)]
        shift, params = get_shift(name), suite.params(name, sev)
        total = worst = hit = 0
        for k in ks:
            px, py = portable[f"{name}@{sev}@{k}@x"], portable[f"{name}@{sev}@{k}@y"]
            if chunk_digests(px, py)[0] != rs.chunks[k]:
                c.detail += "; torch's portable kernels do not reproduce the pin either (another torch or data?)"
                break
            nx, _ = make_chunk(shift, sev, params, images, labels, seed, k)
            diff = np.abs(nx.astype(np.int16) - px.astype(np.int16))
            total += int((diff > 0).sum())
            worst = max(worst, int(diff.max()))
            hit += int((diff > 0).any(axis=(1, 2)).sum())
        else:
            c.pixels, c.max_abs, c.images = total, worst, hit


def _portable_child(request_path: str) -> None:
    """Regenerate the requested chunks (run under ATEN_CPU_CAPABILITY=default)."""
    req = json.loads(Path(request_path).read_text())
    with np.load(req["source"], allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    out = {}
    for name, sev, ks, params in req["sets"]:
        for k in ks:
            x, y = make_chunk(get_shift(name), sev, params, images, labels, req["seed"], k)
            out[f"{name}@{sev}@{k}@x"], out[f"{name}@{sev}@{k}@y"] = x, y
    np.savez(req["out"], **out)


if __name__ == "__main__":
    _portable_child(sys.argv[1])
