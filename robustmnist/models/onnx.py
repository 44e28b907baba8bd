"""ONNX models through onnxruntime (the ``onnx`` extra), on CPU."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .read import ReadModel


class OnnxModule:
    """Wraps an onnxruntime session as a callable on torch tensors (CPU execution)."""

    def __init__(self, path: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(
                f"{path} is an ONNX model; install the onnx extra: pip install 'robustmnist[onnx]'"
            ) from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types
            raise UserError(f"{path} is not a loadable ONNX model ({exc})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = inp.shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(np.asarray(out[0]))

    def eval(self) -> OnnxModule:
        return self


def is_onnx(path: Path) -> bool:
    if path.suffix.lower() == ".onnx":
        return True
    if zipfile.is_zipfile(path):
        return False
    try:
        import onnx
    except ImportError:
        return False
    try:
        onnx.load(str(path), load_external_data=False)
        return True
    except Exception:  # noqa: BLE001 - not ONNX
        return False


def read_onnx(path: Path) -> ReadModel:
    return ReadModel(OnnxModule(path), "onnx")
