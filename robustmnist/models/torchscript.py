"""TorchScript archives (``torch.jit.save``): code and weights in one zip, no pickled classes."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import UserError
from .preprocess import Preprocess
from .read import ReadModel, first_line


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    # torch.save zips hold data.pkl only; TorchScript archives also hold code/ and constants.pkl
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def read_torchscript(path: Path) -> ReadModel:
    try:
        with warnings.catch_warnings():
            # torch 2.10+ marks TorchScript deprecated, but users still ship .ts files
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} looks like TorchScript but cannot be loaded ({first_line(exc)})") from None
    extra = getattr(module, "robustmnist_preprocess", None)
    stored = Preprocess.parse(extra) if isinstance(extra, str) else None
    return ReadModel(module, "torchscript", preprocess=stored)
