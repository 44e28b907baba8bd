"""The KS critical values (metrics/detection.py) kept beside the set cache: scipy computes each
(effective n, level) once per machine and scipy version; later runs read them and never import
scipy.stats. A missing, stale or unreadable file only means scipy computes them again."""

from __future__ import annotations

import json
from importlib import metadata

from ..data.datasets import cache_dir
from ..fileio import atomic_write_json
from ..metrics import detection

FILE = "ks_critical.json"


def _scipy_version() -> str:
    try:
        return metadata.version("scipy")
    except metadata.PackageNotFoundError:
        return "?"


def load() -> int:
    """Add the file's values to detection.CRITICAL; how many it held."""
    try:
        data = json.loads((cache_dir() / FILE).read_text())
        if data.get("scipy") != _scipy_version():
            return 0
        values = {(int(en), float(level)): float(d) for en, level, d in data["values"]}
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    for key, d in values.items():
        detection.CRITICAL.setdefault(key, d)
    return len(values)


def save(known: int) -> None:
    """Write detection.CRITICAL when it holds more than the ``known`` values ``load`` read."""
    if len(detection.CRITICAL) <= known:
        return
    values = sorted([en, level, d] for (en, level), d in detection.CRITICAL.items())
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_dir() / FILE, {"scipy": _scipy_version(), "values": values})
    except OSError:
        pass  # a read-only cache: scipy computes them next time too
