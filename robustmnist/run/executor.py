"""Where sets are generated and scored: the one small interface every executor implements.

``collect.collect`` drives a run through it and turns what it returns into records, so a local
run and a Ray run of the same plan give the same results. An executor is opened for one run
(``open``) and closed after it; in between it is asked, in this order, for the clean scores,
the shifted sets' scores (yielded in plan order), the real sets' logits and the OOD records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..data.datasets import DigitSet
from ..models.load import LoadedModel
from ..results import OODRecord
from ..shifts.pipeline import SetRequest
from .collector import RunOutput
from .scoring import DEFAULT_BATCH, ProgressFn, SetScore


@dataclass(frozen=True)
class RunContext:
    """What every executor needs to know about the run, besides the models and sets."""

    clean: DigitSet  # the first n clean digits: what is scored
    source: DigitSet  # the whole clean test set: what shifted sets are made from
    n: int | None
    seed: int = 0
    batch_size: int = DEFAULT_BATCH
    use_cache: bool = True
    data_root: str | None = None
    fast: bool = True  # each model on its fastest exact forward path (models/fastpath.py)
    progress: ProgressFn | None = None
    ood: tuple[str, ...] = ()


@dataclass
class ScoredSet:
    """One generated set, scored by every model."""

    request: SetRequest
    sha256: str
    cached: bool
    labels: np.ndarray  # the set's labels (a transformed set's are clean's)
    chunks: list[str]  # per-chunk fingerprints (nested sets)
    generate_s: float  # wall seconds spent waiting for the set
    units: list[SetScore]  # one per model, in model order


class Executor(Protocol):
    def open(self, models: list[LoadedModel], ctx: RunContext) -> list[LoadedModel]:
        """Start the run; returns the models as this executor scores them (forward paths)."""

    def score_clean(self) -> list[SetScore]:
        """Every model on the clean digits, logits kept."""

    def score_sets(self, requests: list[SetRequest]) -> Iterator[ScoredSet]:
        """Each requested set generated once and scored by every model, in request order."""

    def real_logits(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Logits per real set per model."""

    def ood_records(self, clean_logits: list[np.ndarray]) -> list[tuple[list[OODRecord], float]]:
        """Per model: the OOD records of ``ctx.ood`` and the seconds they took."""

    def annotate(self, output: RunOutput) -> None:
        """Say in the result where it ran (a no-op locally)."""

    def close(self) -> None:
        """Free what ``open`` took (worker processes, a cluster connection)."""
