"""A finished training run: the model, its checkpoint and curves, and how it is saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..fileio import atomic_write_bytes
from ..models.checkpoint import save_checkpoint
from ..models.preprocess import Preprocess
from ..models.recipes import ZooEntry
from ..report.curves import curve_png
from .export import torchscript_bytes
from .options import EpochStats


@dataclass
class TrainRun:
    model: nn.Module
    checkpoint: dict[str, Any]
    history: list[EpochStats]
    test_accuracy: float
    test_loss: float
    warnings: list[str]
    diverged: bool
    seconds: float
    title: str = ""
    _png: bytes | None = field(default=None, repr=False)

    @property
    def curve_png(self) -> bytes:
        """The learning-curve PNG, drawn on first use (matplotlib costs a second or two)."""
        if self._png is None:
            self._png = curve_png(self.history, self.title, self.test_accuracy, self.warnings)
        return self._png

    def save(self, path: str | Path, torchscript: bool = False) -> list[Path]:
        """Write model.pt, model.curve.png and (optionally) model.ts.pt; returns the paths."""
        path = Path(path)
        stem = path.with_suffix("") if path.suffix else path
        written = [path, stem.with_name(stem.name + ".curve.png")]
        save_checkpoint(path, self.checkpoint)
        atomic_write_bytes(written[1], self.curve_png)
        if torchscript:
            written.append(stem.with_name(stem.name + ".ts.pt"))
            preprocess = Preprocess.from_dict(self.checkpoint["preprocess"])
            atomic_write_bytes(written[2], torchscript_bytes(self.model, preprocess))
        return written


def zoo_record(entry: ZooEntry, run: TrainRun, scale: float, path: str) -> dict[str, Any]:
    """One row of zoo.json: what was asked, what ran, what came out."""
    cfg = run.checkpoint["training"]["config"]
    return {
        "name": entry.name, "arch": entry.arch, "checkpoint": path,
        "optimizer": cfg["optimizer"], "lr": cfg["lr"], "batch_size": cfg["batch_size"],
        "schedule": cfg["schedule"], "augment": cfg["augment"],
        "epochs_published": entry.settings["epochs"], "epochs_run": len(run.history),
        "epochs_scale": scale, "test_accuracy": round(run.test_accuracy, 5),
        "published_accuracy": entry.published,
        "seconds": round(run.seconds, 1), "warnings": run.warnings, "note": entry.note,
    }
