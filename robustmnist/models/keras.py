"""Keras 3 models (``model.save("m.keras")`` or legacy ``"m.h5"``) on Keras' torch backend.

No TensorFlow: Keras 3 runs its layers as torch operations when ``KERAS_BACKEND=torch`` is set
before keras is first imported. Inputs are channels-last as Keras models are built
(28×28, 28×28×1 or 784: a reshape, since there is one channel), and a softmax (or
log-softmax) last activation is read as probabilities (log-probabilities).
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from .preprocess import Preprocess
from .read import ReadModel, first_line

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
INSTALL = "install the keras extra: pip install 'robustmnist[keras]'"


def is_keras(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
        return {"config.json", "model.weights.h5"} <= names
    with open(path, "rb") as f:
        return f.read(8) == HDF5_MAGIC


def import_keras():
    """keras on the torch backend; a clear error when a notebook imported it with another one."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        raise UserError(f"reading Keras models needs Keras 3; {INSTALL}") from None
    if not hasattr(keras, "saving") or not keras.__version__.startswith(("3.", "4.")):
        raise UserError(f"robustmnist reads Keras models with Keras 3 (found {keras.__version__}); {INSTALL}")
    if keras.backend.backend() != "torch":
        raise UserError(f"keras was already imported with the '{keras.backend.backend()}' backend; robustmnist "
                        "runs Keras models on torch: set KERAS_BACKEND=torch before importing keras")
    return keras


class KerasModule:
    """A Keras model as a callable on torch tensors: N×1×28×28 or N×784 -> its outputs."""

    def __init__(self, model: Any):
        self.model = model
        shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else (28, 28, 1)
        self.input_shape = tuple(28 if d is None else int(d) for d in shape)
        if self.input_shape not in ((28, 28), (28, 28, 1), (1, 28, 28), (784,)):
            raise UserError(f"the Keras model takes input of shape {shape}; robustmnist feeds 28×28 digits "
                            "(28×28, 28×28×1 or 784)")
        weights = getattr(model, "weights", [])
        self.device = weights[0].value.device if weights else torch.device("cpu")

    @property
    def layout(self) -> str:
        return "784" if self.input_shape == (784,) else "1x28x28"

    def output_kind(self) -> str:
        last = self.model.layers[-1] if getattr(self.model, "layers", None) else None
        act = getattr(getattr(last, "activation", None), "__name__", "")
        if type(last).__name__ == "Softmax" or act == "softmax":
            return "probs"
        return "log-probs" if act == "log_softmax" else "logits"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # one channel: channels-first and channels-last hold the same bytes
        out = self.model(x.reshape((x.shape[0], *self.input_shape)).to(self.device), training=False)
        return out if isinstance(out, torch.Tensor) else torch.as_tensor(out)

    def eval(self) -> KerasModule:
        return self


def read_keras(path: Path) -> ReadModel:
    keras = import_keras()
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
        hint = (" (a weights-only file: save the whole model with model.save('model.keras'))"
                if path.name.endswith(".weights.h5") else "")
        raise UserError(f"{path} is not a Keras model Keras 3 can load ({first_line(exc)}){hint}") from None
    return wrap_keras(model, "keras")


def wrap_keras(model: Any, fmt: str) -> ReadModel:
    module = KerasModule(model)
    spec = Preprocess(layout=module.layout, output=module.output_kind())
    n_params = int(model.count_params()) if hasattr(model, "count_params") else None
    return ReadModel(module, fmt, preprocess=spec, metadata={"n_params": n_params} if n_params else {})
