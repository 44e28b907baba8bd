"""scikit-learn estimators saved with skops (``skops.io.dump``), read with skops' type check.

skops refuses to build any type outside its trusted defaults; the types a file needs beyond
them are listed in the error, and loaded only with ``--trust-pickle``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..errors import UserError
from .preprocess import Preprocess
from .read import ReadModel, first_line
from .sklearn import SklearnModule


def is_skops(path: Path) -> bool:
    if path.suffix.lower() == ".skops":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return "schema.json" in z.namelist()


def read_skops(path: Path, trust_pickle: bool = False) -> ReadModel:
    try:
        import skops.io as sio
    except ImportError:
        raise UserError(f"{path} is a skops file; install the skops extra: pip install 'robustmnist[skops]'") from None
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} is not a readable skops file ({first_line(exc)})") from None
    if untrusted and not trust_pickle:
        raise UserError(f"{path} needs types skops does not trust by default ({', '.join(untrusted)}); "
                        "if you trust the file, re-run with `trust_pickle=True` to allow exactly these")
    try:
        estimator: Any = sio.load(path, trusted=untrusted or None)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} could not be loaded by skops ({first_line(exc)})") from None
    module = SklearnModule(estimator)
    return ReadModel(module, "skops", preprocess=Preprocess(layout="784", output=module.output),
                     metadata={"estimator": type(estimator).__name__})
