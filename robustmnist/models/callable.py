"""In-memory models: an ``nn.Module``, a Keras model, a scikit-learn classifier, or any callable.

A callable maps an array of N digits to N×10 scores (JAX, TensorFlow, NumPy, ...). It gets a
NumPy array N×28×28 (``layout=784``: N×784), float in the spec's range; with ``range=0-255``
it gets the uint8 pixels themselves. Its output kind is read off the output when the spec
does not name it: rows of non-negative numbers summing to 1 are probabilities.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .preprocess import Preprocess
from .read import ReadModel
from .sklearn import SklearnModule


class CallableModule:
    def __init__(self, fn: Any, uint8: bool = False):
        self.fn = fn
        self.uint8 = uint8

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().cpu().numpy()
        if a.ndim == 4:
            a = a.reshape(a.shape[0], 28, 28)  # the callable contract: N×28×28, no channel axis
        if self.uint8:
            a = np.rint(a).clip(0, 255).astype(np.uint8)
        out = self.fn(a)
        if isinstance(out, torch.Tensor):
            return out.detach().cpu().float()
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def eval(self) -> CallableModule:
        return self


def module_sha256(module: nn.Module) -> str:
    """A content hash of a module's weights (names, dtypes, shapes, bytes), in state_dict order."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _is_keras_model(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "keras" and hasattr(obj, "layers")


def _looks_like_probs(fn: Any, spec: Preprocess) -> bool:
    try:
        with torch.inference_mode():
            out = fn(spec.apply_input(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))))
        out = (out[0] if isinstance(out, tuple | list) else out).detach().double()
    except Exception:  # noqa: BLE001 - validate() reports a model that cannot run
        return False
    if out.dim() != 2 or not (out >= 0).all():
        return False
    return bool(torch.allclose(out.sum(1), torch.ones(len(out), dtype=out.dtype), atol=1e-4))


def read_object(obj: Any, preprocess: Preprocess | None, output_given: bool) -> ReadModel:
    """The in-memory object as a scorer; ``preprocess`` is the caller's spec (None: defaults)."""
    if isinstance(obj, nn.Module):
        return ReadModel(obj.eval(), "module", preprocess=preprocess)
    if _is_keras_model(obj):
        from .keras import import_keras, wrap_keras

        import_keras()
        read = wrap_keras(obj, "keras")
        if preprocess is not None:
            read.preprocess = preprocess
        return read
    if hasattr(obj, "predict_proba") or (hasattr(obj, "decision_function") and hasattr(obj, "classes_")):
        module = SklearnModule(obj)
        spec = preprocess or Preprocess(layout="784")
        if not output_given:
            spec = Preprocess.from_dict({**spec.to_dict(), "output": module.output})
        return ReadModel(module, "sklearn", preprocess=spec, metadata={"estimator": type(obj).__name__})
    if callable(obj):
        spec = preprocess or Preprocess()
        module = CallableModule(obj, uint8=spec.range == "0-255")
        if not output_given and _looks_like_probs(module, spec):
            spec = Preprocess.from_dict({**spec.to_dict(), "output": "probs"})
        return ReadModel(module, "callable", preprocess=spec)
    raise UserError(f"robustmnist cannot score a {type(obj).__name__}: pass an nn.Module, a model file path, "
                    "a Keras model, a scikit-learn classifier, or a callable mapping N×28×28 arrays to N×10 scores")
