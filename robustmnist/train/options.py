"""What training's option help and callbacks need, without torch: ``robustmnist --help`` and
the CLI's progress class import this, and only ``robustmnist train`` itself loads torch."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import MarkedWarning

DATASETS = ("mnist", "fashion", "cifar10", "cifar10-rgb")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")


class TrainingWarning(MarkedWarning):
    """A sanity guard fired while training (also recorded in the checkpoint)."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float  # on the (augmented) training batches, averaged over the epoch
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # the learning rate at the end of the epoch
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainCallbacks:
    """Hooks a caller can override to follow training; the defaults only raise Python warnings."""

    def on_start(self, epochs: int, steps_per_epoch: int, description: str) -> None:
        pass

    def on_step(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        pass

    def on_epoch(self, stats: EpochStats) -> None:
        pass

    def on_warning(self, message: str) -> None:
        warnings.warn(TrainingWarning(message), stacklevel=3)
