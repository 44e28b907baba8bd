"""TorchScript export of a trained model, with its preprocess spec inside the archive."""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from ..models.preprocess import Preprocess


def torchscript_bytes(model: nn.Module, preprocess: Preprocess) -> bytes:
    """A TorchScript archive carrying the preprocess spec as ``robustmnist_preprocess``."""
    scripted_src = copy.deepcopy(model).cpu().eval()
    # A str attribute survives scripting and saving; models.load reads it back.
    scripted_src.robustmnist_preprocess = preprocess.to_string()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still loadable
        torch.jit.save(torch.jit.script(scripted_src), buf)
    return buf.getvalue()
