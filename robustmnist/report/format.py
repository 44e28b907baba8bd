"""Numbers as the report prints them: percentages, signed percentage points, seconds, tones.

A missing or non-finite value prints as an em dash, never as "nan%".
"""

from __future__ import annotations

import math


def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v * 100:.{digits}f}%"


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v * 100:.{digits}f}"


def pp(v: float | None, digits: int = 1) -> str:
    """A change in percentage points with an explicit sign (typographic minus)."""
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v * 100:+.{digits}f}".replace("-", "−")


def fmt3(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def secs(v) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.1f} s"


def sev_label(s: int) -> str:
    return f"s{s}"


def tone(change: float) -> str:
    """A card's colour for an accuracy change from clean: a fall of 15 points is bad, 3 a warning."""
    return "bad" if change < -0.15 else "warn" if change < -0.03 else "good"
