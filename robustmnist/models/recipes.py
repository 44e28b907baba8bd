"""Training recipes: the settings each zoo entry and the demo train their architecture with.

An entry's ``settings`` are keyword arguments of ``train.loop.train``; ``published`` is the
MNIST test accuracy the literature reports for those settings, where there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

# Short schedules the demo trains (lenet5 + the tapering MLP in about a minute on a 2-core CPU).
# One-cycle lets Adam take a large learning rate in the middle of training and anneal it to
# nothing by the end, which is what buys lenet5 >98.5% in three epochs. One thread: on a shared
# box two OpenMP threads spin-wait for a core and ran 9x slower (446 s vs 48 s, measured).
DEMO_SCHEDULES: dict[str, dict[str, Any]] = {
    "lenet5": {"epochs": 3, "lr": 3e-3, "batch_size": 128, "optimizer": "adam",
               "schedule": "onecycle", "threads": 1},
    "mlp-784-256-128-64-10": {"epochs": 4, "lr": 2e-3, "batch_size": 128, "optimizer": "adam",
                              "schedule": "onecycle", "threads": 1},
}


@dataclass(frozen=True)
class ZooEntry:
    name: str  # file stem in the zoo folder
    arch: str
    settings: dict[str, Any]  # keyword arguments of train()
    published: float | None  # published MNIST test accuracy for these settings, if any
    note: str


ZOO_AUGMENT = "noise,blur,smear,geometric,fonts"

ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("mlp-784-50-50-10", "mlp-784-50-50-10",
             {"optimizer": "adam", "lr": 1e-3, "batch_size": 50, "epochs": 10}, 0.9724,
             "published settings"),
    ZooEntry("mlp-784-256-128-64-10", "mlp-784-256-128-64-10",
             {"optimizer": "adam", "lr": 1e-4, "batch_size": 64, "epochs": 15}, 0.9774,
             "published settings; batch size not published, 64 is our choice"),
    ZooEntry("mlp-784-1000x3-10", "mlp-784-1000x3-10",
             {"optimizer": "adam", "lr": 1e-4, "batch_size": 50, "epochs": 50}, 0.9832,
             "published settings"),
    ZooEntry("lenet5", "lenet5",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle"}, None,
             "our settings (ReLU/max-pool LeNet-5 has no canonical recipe)"),
    ZooEntry("cnn-small", "cnn-small",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle"}, None, "our settings"),
    ZooEntry("cnn-small-augment", "cnn-small",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle", "augment": ZOO_AUGMENT}, None,
             f"as cnn-small, plus --augment {ZOO_AUGMENT} on half of each batch"),
    ZooEntry("lenet5-pgd", "lenet5",
             {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 4, "schedule": "onecycle",
              "adversarial": {"method": "pgd", "eps": 0.3, "steps": 5}}, None,
             "PGD adversarial training (Madry et al.) at L-inf 0.3, scaled to a CPU: 5 steps of 0.15, "
             "eps ramped over the first 30% of steps"),
)


def zoo_entries(only: Sequence[str] | None = None) -> list[ZooEntry]:
    if not only:
        return list(ZOO)
    known = {e.name: e for e in ZOO}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise UserError(f"unknown zoo entry {', '.join(unknown)}. Entries: {', '.join(known)}")
    return [known[n] for n in only]


def scaled_epochs(epochs: int, scale: float) -> int:
    if not scale > 0:
        raise UserError(f"`epochs_scale=` must be positive, got {scale}")
    return max(1, round(epochs * scale))
