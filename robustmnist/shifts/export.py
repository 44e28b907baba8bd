"""``robustmnist shifts export``: every set of a suite as files any framework or language reads.

Formats: ``npz`` (one ``<set>.npz`` per set: images uint8 N×28×28, labels int64), ``idx`` (the
MNIST files' own format: ``<set>-images-idx3-ubyte`` and ``<set>-labels-idx1-ubyte``), ``png``
(a folder per set of ``<index>_<label>.png`` plus ``labels.csv``). ``manifest.json`` lists
every set: name (``clean``, ``rotate@3``), shift, severity, sha256 (as in results.json), files.
Sets stream one at a time; the folder appears complete or not at all.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..data.datasets import load_mnist
from ..errors import UserError
from ..fileio import atomic_save_npz, atomic_write_bytes, atomic_write_json
from ..models.predictions import npz_name
from .sets import get_set, set_sha256
from .suite import Suite

FORMATS = ("npz", "idx", "png")


def _sets(suite: Suite | None, n: int | None, seed: int, data_root) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    clean = load_mnist("test", data_root)
    images, labels = clean.images[:n], clean.labels[:n].astype(np.int64)
    yield {"name": "clean", "shift": None, "family": None, "severity": 0}, images, labels
    source_sha = set_sha256(images, labels)
    for name in suite.shift_names if suite else []:
        shift = suite.shift(name)
        for sev in suite.severities:
            params = suite.params(name, sev)
            s = get_set(shift, sev, params, images, labels, len(images), seed, source_sha=source_sha)
            info = {"name": f"{name}@{sev}", "shift": name, "family": shift.family, "severity": sev,
                    "version": shift.version, "params": params}
            yield info, s.images, s.labels


def _idx(images: np.ndarray, labels: np.ndarray) -> tuple[bytes, bytes]:
    n = len(images)
    img = struct.pack(">IIII", 2051, n, 28, 28) + np.ascontiguousarray(images, np.uint8).tobytes()
    lab = struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes()
    return img, lab


def _write(fmt: str, folder: Path, base: str, images: np.ndarray, labels: np.ndarray) -> list[str]:
    if fmt == "npz":
        atomic_save_npz(folder / f"{base}.npz", images=images, labels=labels)
        return [f"{base}.npz"]
    if fmt == "idx":
        img, lab = _idx(images, labels)
        atomic_write_bytes(folder / f"{base}-images-idx3-ubyte", img)
        atomic_write_bytes(folder / f"{base}-labels-idx1-ubyte", lab)
        return [f"{base}-images-idx3-ubyte", f"{base}-labels-idx1-ubyte"]
    from PIL import Image

    (folder / base).mkdir()
    rows = io.StringIO()
    w = csv.writer(rows, lineterminator="\n")
    w.writerow(["file", "label"])
    for i, (im, y) in enumerate(zip(images, labels, strict=True)):  # one file per image: I/O, not maths
        name = f"{i:05d}_{int(y)}.png"
        Image.fromarray(im).save(folder / base / name, format="PNG", compress_level=6)
        w.writerow([name, int(y)])
    atomic_write_bytes(folder / base / "labels.csv", rows.getvalue().encode())
    return [f"{base}/", f"{base}/labels.csv"]


def export_sets(suite: Suite | None, out: str | os.PathLike, fmt: str = "npz", n: int | None = None,
                seed: int = 0, data_root=None, progress: Callable[[str], None] | None = None) -> Path:
    """Write every set of ``suite`` (and clean) into the new folder ``out``; returns it."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; use {', '.join(FORMATS)}")
    if n is not None and n < 1:
        raise UserError(f"`n=` must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose a new `out=` folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        entries = []
        for info, images, labels in _sets(suite, n, seed, data_root):
            files = _write(fmt, tmp, npz_name(info["name"]), images, labels)
            entries.append({**info, "n": int(len(images)), "sha256": set_sha256(images, labels), "files": files})
            if progress:
                progress(info["name"])
        manifest = {
            "format": fmt, "suite": suite.name if suite else None, "seed": seed, "n": int(entries[0]["n"]),
            "images": "uint8 N×28×28, white digit on black (MNIST polarity)", "labels": "digits 0-9",
            "sha256": "sha256 of the uint8 image bytes followed by the int64 label bytes (as in results.json)",
            "predictions": "score each set and save one N×10 array per set name in an .npz (np.savez(**{name: "
                           "scores})), then: robustmnist eval --predictions FILE.npz with the same suite, n, seed",
            "sets": entries,
        }
        atomic_write_json(tmp / "manifest.json", manifest)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
