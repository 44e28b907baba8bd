"""Page blocks several sections share: the Python side of ``_macros.html.j2`` (heat tables,
figures, confusion matrices) and of the cards and mistake thumbnails."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import plots
from .format import num, pp
from .stats import confusion_rates


@dataclass
class Cell:
    text: str
    bg: str = ""
    fg: str = ""
    title: str = ""
    strong: bool = False


@dataclass
class HeatRow:
    label: str
    cells: list[Cell]
    note: str = ""


@dataclass
class HeatGroup:
    title: str
    rows: list[HeatRow]
    note: str = ""


@dataclass
class HeatTable:
    columns: list[str]
    groups: list[HeatGroup]
    key: list[tuple[str, str, str]]  # colour key swatches: (bg, fg, text)
    caption: str
    row_header: str = "shift"
    col_px: int = 40  # width a value column needs (model names need more than numbers)

    @property
    def column_width(self) -> int:
        """CSS column width that fits one family's table: the groups flow into as many
        columns as the page has room for (three on a laptop, one on a phone)."""
        return 130 + self.col_px * len(self.columns)

    @property
    def min_width_em(self) -> float:
        """Below this a table scrolls sideways in its box instead of squeezing digits together."""
        return round(9.5 + self.col_px / 13 * len(self.columns), 1)


def acc_cell(v: float | None, title: str = "") -> Cell:
    bg, fg = plots.cell_colors(v, plots.ACC_CMAP, 0.0, 1.0)
    return Cell(num(v), bg, fg, title)


def acc_key() -> list[tuple[str, str, str]]:
    return [(bg, fg, f"{v * 100:.0f}") for bg, fg, v in plots.legend_gradient(plots.ACC_CMAP, 0, 1)]


def delta_cell(v: float | None, vmax: float, title: str = "", digits: int = 1) -> Cell:
    bg, fg = plots.cell_colors(v, plots.DELTA_CMAP, -vmax, vmax, center=0.0)
    text = "—" if v is None else f"{v * 100:.{digits}f}".replace("-", "−")
    return Cell(text, bg, fg, title)


def delta_key(vmax: float) -> list[tuple[str, str, str]]:
    return [(bg, fg, f"{v * 100:.0f}".replace("-", "−"))
            for bg, fg, v in plots.legend_gradient(plots.DELTA_CMAP, -vmax, vmax, 0.0, steps=7)]


def delta_vmax(a: np.ndarray) -> float:
    """End of a change colour scale centred on 0: the largest change rounded up to 5 points,
    at least 5 and at most 100, so one outlier does not wash out the rest."""
    finite = np.abs(a[np.isfinite(a)]) if a.size else np.array([])
    return float(min(1.0, max(0.05, np.ceil((finite.max() if finite.size else 0.05) * 20) / 20)))


@dataclass
class Card:
    label: str
    value: str
    detail: str = ""
    tone: str = ""  # "", "bad", "warn", "good"


@dataclass
class Figure:
    uri: str
    alt: str
    caption: str = ""
    wide: bool = False


@dataclass
class Mistake:
    uri: str
    pair: str  # "true→predicted"
    caption: str  # severity and confidence
    title: str


@dataclass
class Matrix:
    title: str
    rows: list[list[Cell]]
    kind: str  # "rates" or "delta"


def rate_matrix(cm, title: str) -> Matrix:
    counts = np.asarray(cm, dtype=int)
    rates = confusion_rates(counts)
    rows = []
    for t in range(rates.shape[0]):
        row = []
        for p in range(rates.shape[1]):
            v = rates[t, p]
            bg, fg = plots.cell_colors(v, plots.RATE_CMAP, 0.0, 1.0)
            text = "" if v < 0.005 else f"{v * 100:.0f}"
            row.append(Cell(text, bg, fg, f"true {t} → predicted {p}: {counts[t, p]:,} images "
                                          f"({v * 100:.1f}%)", strong=t == p))
        rows.append(row)
    return Matrix(title, rows, "rates")


def delta_matrix(delta: np.ndarray, title: str) -> Matrix:
    vmax = delta_vmax(delta)
    rows = []
    for t in range(delta.shape[0]):
        row = []
        for p in range(delta.shape[1]):
            v = float(delta[t, p])
            # red = worse everywhere: more confusion off the diagonal, less accuracy on it
            worse = -v if t == p else v
            bg, fg = plots.cell_colors(worse, plots.DELTA_CMAP, -vmax, vmax, center=0.0)
            text = "" if abs(v) < 0.005 else f"{v * 100:+.0f}".replace("-", "−")
            row.append(Cell(text, bg, fg, f"true {t} → predicted {p}: {pp(v)} pp vs clean",
                            strong=t == p))
        rows.append(row)
    return Matrix(title, rows, "delta")
