"""``torch.load`` with the safe reader first; full unpickling only on explicit opt-in.

Unpickling a stranger's file can run arbitrary code, so everything goes through
``weights_only=True`` first (checkpoints and state_dicts pass); a whole pickled
``nn.Module`` needs ``trust_pickle=True``. Its class must then be importable: a module saved
from a script names it ``__main__.MyNet``, which ``--model-code FILE.py`` maps to the file.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import warnings
import zipfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch

from ..errors import MarkedWarning, UserError
from .model_code import ModelCode, import_file
from .read import first_line

SAVE_SAFELY = ("or re-save it without pickled classes: torch.jit.script(model).save('model.pt'), "
               "or torch.save(model.state_dict(), 'model.pt') loaded with `model_code=\"FILE.py:ClassName\"`")


class MissingClass(Exception):
    def __init__(self, module: str, name: str):
        super().__init__(f"no class {name} in module {module}")
        self.module, self.name = module, name


def _pickle_module(main: ModuleType | None) -> SimpleNamespace:
    """A pickle_module for torch.load whose Unpickler finds ``__main__.X`` in ``main``."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module == "__main__" and main is not None and hasattr(main, name):
                return getattr(main, name)
            try:
                return super().find_class(module, name)
            except AttributeError:  # the module imported, the class is not in it
                raise MissingClass(module, name) from None

    return SimpleNamespace(__name__="pickle", Unpickler=Unpickler, load=pickle.load)


@contextlib.contextmanager
def _importable(directory: Path | None):
    if directory is None:
        yield
        return
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))


def _unpickle_error(path: Path, exc: BaseException, code: ModelCode | None) -> UserError:
    text = first_line(exc)
    missing_mod = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if isinstance(exc, MissingClass):
        cls, mod = exc.name, exc.module
        where = "the script that saved it" if mod == "__main__" else f"module '{mod}'"
        hint = (f"pass `model_code=\"FILE.py:{cls}\"` (the file that defines {cls}) with `trust_pickle=True`"
                if code is None else f"{code.path} does not define {cls}; point `model_code=` at the file that does")
        return UserError(f"{path} is a pickled model whose class {cls} was defined in {where}; {hint}, "
                         f"{SAVE_SAFELY}")
    if missing_mod:
        top = missing_mod.split(".")[0]
        return UserError(f"{path} is a pickled model that needs the module '{missing_mod}' (where its class "
                         f"was defined); pass `model_code=\"path/to/{top}.py\"` (or the directory holding it) "
                         f"with `trust_pickle=True`, {SAVE_SAFELY}")
    return UserError(f"{path} could not be unpickled ({text})")


def torch_load(path: Path, trust_pickle: bool, code: ModelCode | None = None) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise UserError(
                f"{path} contains pickled Python objects (e.g. a whole nn.Module saved with "
                "torch.save(model)); loading it could run arbitrary code. If you trust the file, "
                f"re-run with `trust_pickle=True`, {SAVE_SAFELY}"
            ) from None
    except Exception as exc:  # noqa: BLE001 - garbage input fails in many ways (KeyError on text...)
        # torch's own words ("pop from empty list" for a text file) only help when the file
        # at least looks like a torch.save archive or pickle.
        with open(path, "rb") as f:
            head = f.read(2)
        looks_torch = zipfile.is_zipfile(path) or head[:1] == b"\x80"
        raise UserError(
            f"{path} is not a model file robustmnist can read: expected TorchScript, ONNX, Keras, a "
            "robustmnist checkpoint or a state_dict saved with torch.save"
            + (f" (torch: {first_line(exc)})" if looks_torch else "")) from None
    warnings.warn(MarkedWarning(f"unpickling {path} because `trust_pickle=True` was given"), stacklevel=3)
    main = import_file(code.path) if code is not None and code.path.is_file() else None
    try:
        with _importable(code.directory if code else None):
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_pickle_module(main))
    except Exception as exc:  # noqa: BLE001 - arbitrary pickles fail arbitrarily
        raise _unpickle_error(path, exc, code) from None
