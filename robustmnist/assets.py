"""Where the suite specs (shifts/) and pinned fonts (fonts/) live.

In a source checkout they sit at the project root; in an installed wheel hatchling
force-includes them as robustmnist/_assets/{shifts,fonts}.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    for candidate in (_PKG / "_assets" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"robustmnist asset folder '{name}' not found next to the package")


def shifts_dir() -> Path:
    return asset_dir("shifts")


def fonts_dir() -> Path:
    return asset_dir("fonts")
