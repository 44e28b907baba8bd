"""Checks around training: the arguments before any data is read, and the sanity guards
that fire while it runs (non-finite loss, accuracy at chance, inputs outside the declared
convention). Each guard's message becomes a warning the CLI shows and the checkpoint records.
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .batches import as_unit_float
from .options import DATASETS, OPTIMIZERS, SCHEDULES, TrainCallbacks

CHANCE_MARGIN = 1.5  # "at chance" = accuracy below 1.5 × 1/classes after a full epoch
RANGE_TOLERANCE = 1e-3


class Guards:
    """The sanity checks; each fires at most once and records its message."""

    def __init__(self, callbacks: TrainCallbacks, n_classes: int):
        self.callbacks = callbacks
        self.chance = 1.0 / n_classes
        self.messages: list[str] = []
        self._fired: set[str] = set()

    def warn(self, key: str, message: str) -> None:
        if key in self._fired:
            return
        self._fired.add(key)
        self.messages.append(message)
        self.callbacks.on_warning(message)

    def check_range(self, lo: float, hi: float) -> None:
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            self.warn("range", f"training inputs span [{lo:.4g}, {hi:.4g}] but the checkpoint "
                      "declares range 0-1: scale images to [0, 1] (divide uint8 pixels by 255)")
        elif hi < 0.05:
            self.warn("range", f"training inputs never exceed {hi:.4g}: were the pixels divided "
                      "by 255 twice? The checkpoint declares range 0-1")

    def check_polarity(self, bright_border_fraction: float) -> None:
        if bright_border_fraction > 0.5:
            self.warn("polarity", f"{bright_border_fraction:.0%} of training images have a "
                      "bright border (dark digits on light paper) but the checkpoint declares "
                      "white-on-black: invert them (1 - x) to match MNIST")

    def check_chance(self, epoch: int, accuracy: float, which: str) -> None:
        if accuracy < CHANCE_MARGIN * self.chance:
            self.warn("chance", f"{which} accuracy is {accuracy:.1%} after epoch {epoch}, "
                      f"chance level is {self.chance:.0%}: the model is not learning. Check the "
                      "learning rate, the labels and the input range")


def bright_border_fraction(images: torch.Tensor, sample: int = 2000) -> float:
    """Share of images whose border median is above mid-grey (data.normalise_polarity's test)."""
    x = as_unit_float(images[:sample])
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    return (border.flatten(1).median(dim=1).values > 0.5).float().mean().item()


def validate_args(dataset: str, epochs: int, lr: float, batch_size: int, optimizer: str,
                   weight_decay: float, val_split: float, schedule: str,
                   augment_fraction: float, threads: int | None) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset '{dataset}'. Known: {', '.join(DATASETS)}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{optimizer}'. Use one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule '{schedule}'. Use one of {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"learning rate must be a positive number, got {lr}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    if weight_decay < 0:
        raise UserError(f"weight decay must be zero or positive, got {weight_decay}")
    if not 0 <= val_split < 1:
        raise UserError(f"validation split must be in [0, 1), got {val_split}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    if not 0 < augment_fraction <= 1:
        raise UserError(f"augment fraction must be in (0, 1], got {augment_fraction}")
