"""A scikit-learn classifier as a scorer: ``predict_proba`` (or ``decision_function``) on N×784."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UserError


class SklearnModule:
    def __init__(self, estimator: Any):
        self.estimator = estimator
        if hasattr(estimator, "predict_proba"):
            self.output, self._fn = "probs", estimator.predict_proba
        elif hasattr(estimator, "decision_function"):
            self.output, self._fn = "logits", estimator.decision_function
        else:
            raise UserError(f"the {type(estimator).__name__} has neither predict_proba nor decision_function; "
                            "robustmnist needs per-class scores")
        classes = getattr(estimator, "classes_", None)
        try:
            self.columns = None if classes is None else [int(c) for c in classes]
        except (TypeError, ValueError):
            raise UserError(f"the classifier's classes are {list(classes)}; robustmnist needs the digits 0-9") from None
        if self.columns is not None and not set(self.columns) <= set(range(10)):
            raise UserError(f"the classifier's classes are {self.columns}; robustmnist needs the digits 0-9")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        scores = np.asarray(self._fn(x.detach().cpu().reshape(x.shape[0], -1).numpy()), dtype=np.float32)
        if self.columns is None or self.columns == list(range(10)):
            return torch.from_numpy(scores)
        # classes_ order is the estimator's; missing digits get no probability (or -inf logits)
        out = np.full((len(scores), 10), 0.0 if self.output == "probs" else -1e9, np.float32)
        out[:, self.columns] = scores
        return torch.from_numpy(out)

    def eval(self) -> SklearnModule:
        return self
