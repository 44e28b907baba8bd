"""Model files -> a ready-to-score ``LoadedModel``. The only module that knows file formats.

Formats, detected from the file's content rather than its name:
- TorchScript archives (``torch.jit.save``)                       -> format "torchscript"
- robustmnist checkpoints (see checkpoint.py)                       -> format "checkpoint"
- bare state_dicts, with ``arch=`` (or matched against the zoo)   -> format "state_dict"
- pickled ``nn.Module`` files, only with ``trust_pickle=True``      -> format "pickle"
- ONNX models (needs the ``onnx`` extra: onnxruntime)               -> format "onnx"

Everything torch.load reads goes through ``weights_only=True`` first: unpickling a
stranger's file can run arbitrary code, so full pickle needs an explicit opt-in.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..fileio import sha256_file
from .checkpoint import is_checkpoint, model_from_checkpoint
from .preprocess import Preprocess
from .zoo import all_archs, build


@dataclass
class LoadedModel:
    module: Any  # nn.Module / ScriptModule / OnnxModule: a callable taking a float tensor
    preprocess: Preprocess
    path: str
    sha256: str
    format: str
    arch: str | None = None
    n_params: int | None = None
    metadata: dict = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    forward_path: Any = None  # fastpath.PathChoice once the fastest exact path was chosen

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def to(self, device: torch.device) -> LoadedModel:
        if isinstance(self.module, nn.Module | torch.jit.ScriptModule):
            self.module = self.module.to(device)
            self.device = device
        return self


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


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    # torch.save zips hold data.pkl only; TorchScript archives also hold code/ and constants.pkl
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def _is_onnx(path: Path) -> bool:
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


def _param_count(module: Any) -> int | None:
    if isinstance(module, nn.Module):
        return int(sum(p.numel() for p in module.parameters()))
    return None


def _match_arch(state: dict[str, torch.Tensor]) -> str | None:
    """The zoo architecture whose parameter names and shapes match a bare state_dict."""
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    for name, arch in all_archs().items():
        ref = {k: tuple(v.shape) for k, v in arch.builder().state_dict().items()}
        if ref == shapes:
            return name
    return None


def _from_state_dict(state: dict, arch: str | None, path: Path) -> tuple[nn.Module, str]:
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds a dict that is neither a robustmnist checkpoint nor a state_dict")
    if arch is None:
        arch = _match_arch(state)
        if arch is None:
            raise UserError(
                f"{path} is a bare state_dict and matches no zoo architecture; pass --arch NAME "
                f"(known: {', '.join(all_archs())}) or save the model with torch.jit.save"
            )
    model = build(arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path} does not fit architecture '{arch}': {first}") from None
    return model.eval(), arch


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise UserError(
                f"{path} contains pickled Python objects (e.g. a whole nn.Module saved with "
                "torch.save(model)); loading it could run arbitrary code. If you trust the file, "
                "re-run with --trust-pickle, or save the model with torch.jit.save or its state_dict"
            ) from None
        del exc
    except Exception as exc:  # noqa: BLE001 - garbage input fails in many ways (KeyError on text...)
        # torch's own words ("pop from empty list" for a text file) only help when the file
        # at least looks like a torch.save archive or pickle.
        with open(path, "rb") as f:
            head = f.read(2)
        looks_torch = zipfile.is_zipfile(path) or head[:1] == b"\x80"
        raise UserError(
            f"{path} is not a model file robustmnist can read: expected TorchScript, ONNX, a "
            "robustmnist checkpoint or a state_dict saved with torch.save"
            + (f" (torch: {_first_line(exc)})" if looks_torch else "")) from None
    warnings.warn(f"unpickling {path} because --trust-pickle was given", stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - arbitrary pickles fail arbitrarily
        raise UserError(f"{path} could not be unpickled ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model(
    path: str | Path,
    arch: str | None = None,
    preprocess: str | None = None,
    trust_pickle: bool = False,
) -> LoadedModel:
    """Load any supported model file; ``preprocess`` (a spec string) overrides the stored spec."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"model file {p} does not exist")
    if not p.is_file():
        raise UserError(f"model path {p} is not a file")
    try:
        digest = sha256_file(p)
    except OSError as exc:
        raise UserError(f"cannot read model file {p}: {exc.strerror}") from None
    if p.stat().st_size == 0:
        raise UserError(f"model file {p} is empty")

    stored: Preprocess | None = None
    metadata: dict = {}
    found_arch = arch
    if _is_torchscript(p):
        try:
            with warnings.catch_warnings():
                # torch 2.10+ marks TorchScript deprecated, but users still ship .ts files
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(p), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{p} looks like TorchScript but cannot be loaded ({_first_line(exc)})") from None
        fmt = "torchscript"
        extra = getattr(module, "robustmnist_preprocess", None)
        if isinstance(extra, str):
            stored = Preprocess.parse(extra)
    elif _is_onnx(p):
        module = OnnxModule(p)
        fmt = "onnx"
    else:
        obj = _torch_load(p, trust_pickle)
        if is_checkpoint(obj):
            try:
                module = model_from_checkpoint(obj)
            except (KeyError, RuntimeError) as exc:
                raise UserError(f"{p} is a damaged robustmnist checkpoint ({_first_line(exc)})") from None
            fmt, found_arch = "checkpoint", obj["arch"]
            stored = Preprocess.from_dict(obj.get("preprocess"))
            metadata = {"training": obj.get("training", {}), "versions": obj.get("versions", {})}
        elif isinstance(obj, nn.Module):
            module, fmt = obj.eval(), "pickle"
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            module, found_arch = _from_state_dict(obj["state_dict"], arch, p)
            fmt = "state_dict"
        elif isinstance(obj, dict):
            module, found_arch = _from_state_dict(obj, arch, p)
            fmt = "state_dict"
        else:
            raise UserError(f"{p} holds a {type(obj).__name__}, not a model")

    if arch is not None and (fmt in ("torchscript", "onnx", "pickle") or found_arch != arch):
        # Only a bare state_dict needs to be told its architecture; anywhere else --arch would
        # be silently ignored (or contradict the file), so say so.
        carried = f"stores architecture '{found_arch}'" if found_arch else "carries its own architecture"
        raise UserError(f"--arch applies to bare state_dicts only: {p} is a {fmt} file, which {carried}; "
                        "drop --arch")
    if stored is None and found_arch is not None:
        stored = Preprocess(layout=all_archs()[found_arch].layout)
    spec = stored or Preprocess()
    if preprocess:
        spec = Preprocess.parse(preprocess, base=spec)
    loaded = LoadedModel(module, spec, str(p), digest, fmt, found_arch, _param_count(module), metadata)
    layout_named = bool(preprocess) and any(
        t in preprocess for t in ("layout", "784", "1x28x28", "flat"))
    return validate(loaded, layout_given=stored is not None or layout_named)


def _probe(module: Any, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = module(x)
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor")
    return out


def validate(model: LoadedModel, layout_given: bool = True) -> LoadedModel:
    """Probe the model with two blank digits: output must be N×10; find the layout if unknown."""
    blank = torch.zeros(2, 1, 28, 28)
    layouts = [model.preprocess.layout]
    if not layout_given:
        layouts += [lay for lay in ("1x28x28", "784") if lay not in layouts]
    errors = []
    for layout in layouts:
        spec = replace(model.preprocess, layout=layout)
        try:
            out = _probe(model.module, spec.apply_input(blank))
        except Exception as exc:  # noqa: BLE001 - a model may raise anything on a wrong shape
            errors.append(f"{layout}: {_first_line(exc)}")
            continue
        if out.dim() != 2 or out.shape != (2, 10):
            raise UserError(
                f"{model.path}: the model's output has shape {tuple(out.shape)} for a batch of 2; "
                "robustmnist needs N×10 class scores"
            )
        model.preprocess = spec
        return model
    raise UserError(
        f"{model.path}: the model rejects both 1×28×28 and 784 input ({'; '.join(errors)})"
    )
