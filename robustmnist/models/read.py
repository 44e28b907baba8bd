"""What a format reader hands back to ``load.py``: the callable and what the file says about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .preprocess import Preprocess


@dataclass
class ReadModel:
    module: Any  # nn.Module, ScriptModule or a wrapper with __call__(float tensor) -> scores
    format: str
    arch: str | None = None
    # The input/output convention the file declares or implies (a Keras softmax layer, a skops
    # classifier's probabilities); None leaves the default with the layout found by probing.
    preprocess: Preprocess | None = None
    metadata: dict = field(default_factory=dict)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
