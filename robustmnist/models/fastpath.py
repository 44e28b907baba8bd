"""The fastest exact forward path for one model, chosen by measuring, not by guessing.

The same network runs several times faster on a CPU through a frozen TorchScript graph
(oneDNN conv+ReLU fusion) or an ONNX export run by onnxruntime than through eager PyTorch,
and which one wins depends on the network and the machine: conv nets gain most (4-5x over
the plain eager loop in benchmarks/score_paths.json), small MLPs far less. So each candidate
is built, checked against eager PyTorch on a few batches of real digits (every argmax equal,
logits within ``EXACT_ATOL``) and timed on the same batches, interleaved so a busy neighbour
slows them all alike; the fastest survivor runs, and a candidate that cannot be built or does
not match is dropped with the reason recorded.

CUDA (and MPS) keep eager PyTorch: the GPU is not the bottleneck for 28×28 digits. Models
that are not torch modules (ONNX files, other frameworks, callables) keep their own path.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .preprocess import Preprocess

# "Exact": every argmax as eager's and logits within 1e-4 (scaled by the logits' size, since a
# model fed 0-255 input can output logits in the thousands); measured differences are <1e-5.
EXACT_ATOL = 1e-4
PROBE_IMAGES = 1024  # two batches of 512: enough digits to catch a wrong graph, cheap to run
ODD_BATCH = 37  # a traced or exported graph must also serve the last, partial batch
PROBE_SECONDS = 1.5  # timing rounds stop after this (at least one round always runs)
PROBE_ROUNDS = 30  # at most; the time limit usually stops them first
# A candidate must beat eager by this factor to replace it: timings on a shared CPU jitter by a
# few per cent, and a path that is only "faster" within noise buys nothing but risk.
MIN_GAIN = 1.05

EAGER = "eager"
ONNX = "onnxruntime"
FROZEN = "torchscript-frozen"
CHANNELS_LAST = "channels-last"


@dataclass(frozen=True)
class PathChoice:
    """Which forward path runs, and the probe that chose it (goes into results.json)."""

    name: str
    images_per_s: float  # the chosen path on the probe batches
    rates: dict[str, float] = field(default_factory=dict)  # every candidate that passed
    rejected: dict[str, str] = field(default_factory=dict)  # candidate -> why it was dropped
    build_s: dict[str, float] = field(default_factory=dict)  # candidate -> export/trace seconds
    probe_s: float = 0.0  # building, checking and timing every candidate
    device: str = "cpu"
    max_abs_diff: float = 0.0  # of the chosen path vs eager on the probe
    eager_module: Any = field(default=None, repr=False, compare=False)  # the module as loaded

    def to_dict(self) -> dict:
        return {"name": self.name, "images_per_s": round(self.images_per_s),
                "rates": {k: round(v) for k, v in self.rates.items()}, "rejected": dict(self.rejected),
                "build_s": {k: round(v, 3) for k, v in self.build_s.items()},
                "probe_s": round(self.probe_s, 3), "device": self.device,
                "max_abs_diff": self.max_abs_diff}

    def describe(self) -> str:
        """'onnxruntime (5.2x eager)' for the terminal line."""
        eager = self.rates.get(EAGER)
        if self.name != EAGER and eager:
            return f"{self.name}, {self.images_per_s / eager:.1f}x eager"
        return self.name


def forward(module: Any, preprocess: Preprocess, xb_u8: torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 batch -> float logits N×10: the scorer's one forward step."""
    x = xb_u8.to(torch.float32).div_(255.0).unsqueeze(1)
    out = module(preprocess.apply_input(x))
    if isinstance(out, tuple | list):
        out = out[0]
    return preprocess.to_logits(out)


# -- candidates ------------------------------------------------------------------------------

@contextmanager
def _building():
    # TorchScript and the TorchScript-based ONNX exporter are marked deprecated in torch 2.10+;
    # the notices are for authors of new code, not for someone scoring a model
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield


def _frozen(module: nn.Module, example: torch.Tensor) -> Any:
    with _building():
        script = module if isinstance(module, torch.jit.ScriptModule) else \
            torch.jit.trace(module, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(script.eval()))


def _channels_last(module: nn.Module) -> Callable:
    def build(example: torch.Tensor) -> nn.Module:
        with _building():
            return _ChannelsLast(module)
    return build


class _ChannelsLast(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(module).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> Any:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


class OrtForward:
    """An onnxruntime session over an ONNX export of the network, called like the module."""

    def __init__(self, model_bytes: bytes):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # as many threads as torch uses, so --threads/OMP settings mean the same for both paths
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        opts.inter_op_num_threads = 1
        # no spin-waiting between runs: the scorer's own torch ops run in between, and on a
        # shared CPU spinning threads take cores from them (measured 8-15% faster without)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.model_bytes = model_bytes

    def __reduce__(self):
        # a session cannot be pickled; its ONNX bytes can (Ray ships models to worker processes)
        return (OrtForward, (self.model_bytes,))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().contiguous().numpy()  # zero-copy for a CPU float32 tensor
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])


def _onnx(module: nn.Module, example: torch.Tensor) -> OrtForward:
    buf = io.BytesIO()
    with _building():
        # dynamo=False: the TorchScript-based exporter needs only the onnx package (the dynamo
        # one needs onnxscript too) and exports ScriptModules as well as plain modules
        torch.onnx.export(module, (example[:2],), buf, dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return OrtForward(buf.getvalue())


def candidates(module: Any, preprocess: Preprocess, device: torch.device) -> dict[str, Callable]:
    """name -> builder(example_input) for the paths this model can take on this device (the probe
    times only those ``worth_timing``; a Ray worker can follow any of them)."""
    if device.type != "cpu" or not isinstance(module, nn.Module):
        return {}
    out: dict[str, Callable] = {
        ONNX: lambda ex: _onnx(module, ex),
        FROZEN: lambda ex: _frozen(module, ex),
    }
    if preprocess.layout != "784":
        out[CHANNELS_LAST] = _channels_last(module)
    return out


def worth_timing(name: str, module: nn.Module) -> bool:
    """Whether the model's structure lets path ``name`` help, so that a timed gain can be real."""
    if _mlp(module):
        # Measured on the project's 2 shared cores, a graph path runs an MLP 1.1-1.4x eager's
        # speed on a quiet machine but 2.4-5x with both cores busy (eager's
        # OpenMP threads wait on each other): timing would choose by the load of the moment, and
        # two runs of one request would differ in their last float bits. Eager, what a quiet
        # machine chooses, runs on every load; an MLP is fast on it anyway (>= 40k images/s busy).
        # (A Ray worker can still follow a graph path its driver chose: see ``candidates``.)
        return False
    if name == CHANNELS_LAST:
        # channels_last only re-lays out 4-D tensors so that oneDNN's convolutions read them
        # faster; without 2-D convolutions (an MLP taking 1x28x28 and flattening) it adds an input
        # copy and nothing else, so any gain timed for it is noise (it was: "3.5x eager")
        return _convolves(module)
    return True


_CONV_OPS = ("aten::_convolution", "aten::conv2d", "aten::conv_transpose2d", "aten::mkldnn_convolution")


def _convolves(module: nn.Module) -> bool:
    """Whether the model runs 2-D convolutions: 4-D weights (Conv2d, ConvTranspose2d or a
    functional conv's kernel), or a conv op in a TorchScript graph (frozen ones hold no weights)."""
    if any(t.dim() == 4 for t in (*module.parameters(), *module.buffers())):
        return True
    if isinstance(module, torch.jit.ScriptModule):
        try:
            graph = module.inlined_graph
        except Exception:  # noqa: BLE001 - no graph to read: count it as convolving, timing decides
            return True
        return any(graph.findAllNodes(op) for op in _CONV_OPS)
    return False


# The layers of an MLP: Linear layers with element-wise activations, normalisation, dropout and
# flattening between them. Only exact types count: a subclass may compute anything in its forward.
_MLP_LAYERS = frozenset({
    "Linear", "Flatten", "Identity", "Dropout", "BatchNorm1d", "LayerNorm", "ReLU", "ReLU6", "LeakyReLU",
    "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish",
    "Hardsigmoid", "Softplus", "Softsign", "Softmax", "LogSoftmax"})


def _mlp(module: nn.Module) -> bool:
    """Whether every weight of the model sits in an MLP layer, at least one Linear: an
    nn.Sequential of them, or a module of its own whose forward calls them (and holds no weights
    of its own, which it could use for anything). TorchScript modules count by their layers too."""
    linear = False
    for m in module.modules():
        if next(iter(m.children()), None) is not None:  # holds layers: and no weights of its own
            if next(iter(m.parameters(recurse=False)), None) is not None or \
                    next(iter(m.buffers(recurse=False)), None) is not None:
                return False
            continue
        kind = m.original_name if isinstance(m, torch.jit.ScriptModule) else \
            type(m).__name__ if type(m) is getattr(nn, type(m).__name__, None) else None
        if kind not in _MLP_LAYERS:
            return False
        linear = linear or kind == "Linear"
    return linear


# -- the probe -------------------------------------------------------------------------------

def _close(a: torch.Tensor, ref: torch.Tensor) -> tuple[bool, float]:
    if a.shape != ref.shape:
        return False, float("inf")
    diff = float((a - ref).abs().max()) if a.numel() else 0.0
    scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
    same = bool((a.argmax(1) == ref.argmax(1)).all())
    return same and diff <= EXACT_ATOL * scale, diff


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def choose(
    module: Any,
    preprocess: Preprocess,
    images: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    only: list[str] | None = None,
) -> tuple[Any, PathChoice]:
    """(the fastest exact module, the probe's record). ``images`` are real uint8 digits."""
    device = torch.device(device)
    t0 = time.perf_counter()
    bs = max(1, min(batch_size, PROBE_IMAGES))
    src = torch.from_numpy(np.ascontiguousarray(images[:PROBE_IMAGES])).to(device)
    if len(src) == 0:
        src = torch.zeros(1, 28, 28, dtype=torch.uint8, device=device)
    batches = list(src.split(bs))
    odd = src[:ODD_BATCH]
    built: dict[str, Any] = {EAGER: module}
    best_s: dict[str, float] = {}  # name -> best seconds per image seen so far
    rejected: dict[str, str] = {}
    diffs: dict[str, float] = {EAGER: 0.0}
    build_s: dict[str, float] = {}

    def run(mod: Any, xb: torch.Tensor, name: str) -> torch.Tensor:
        _sync(device)
        t = time.perf_counter()
        out = forward(mod, preprocess, xb).float().cpu()
        _sync(device)
        if len(xb) == len(batches[0]):  # time whole batches only: the odd one is a check
            best_s[name] = min(best_s.get(name, float("inf")), (time.perf_counter() - t) / len(xb))
        return out

    with torch.inference_mode():
        # the odd batch first: every later, timed call then sees the shape it was warmed up on
        reference = [run(module, b, EAGER) for b in (odd, *batches)]
    # outside inference mode: tracing and export cannot take inference tensors
    example = preprocess.apply_input(batches[0].to(torch.float32).div(255.0).unsqueeze(1))
    builders = {k: v for k, v in candidates(module, preprocess, device).items()
                if worth_timing(k, module) and (only is None or k in only)}
    for name, build in builders.items():
        t_build = time.perf_counter()
        try:
            fast = build(example)
            build_s[name] = time.perf_counter() - t_build
            with torch.inference_mode():
                outs = [run(fast, b, name) for b in (odd, *batches)]  # the check doubles as warm-up
        except Exception as exc:  # noqa: BLE001 - an export can fail in many ways; eager remains
            rejected[name] = f"failed: {_first_line(exc)}"
            best_s.pop(name, None)
            continue
        worst = 0.0
        for got, want in zip(outs, reference, strict=True):
            ok, diff = _close(got, want)
            worst = max(worst, diff)
            if not ok:
                rejected[name] = f"not exact: max |logit difference| {diff:.2g} or a different argmax"
                best_s.pop(name, None)
                break
        else:
            built[name] = fast
            diffs[name] = worst
    # Interleaved rounds on one batch: a load spike from a neighbour hits every candidate alike,
    # and the best of several rounds is the speed of the path rather than of the machine's mood.
    t_rounds = time.perf_counter()
    with torch.inference_mode():
        for _ in range(PROBE_ROUNDS):
            for name, mod in built.items():
                run(mod, batches[0], name)
            if time.perf_counter() - t_rounds > PROBE_SECONDS:
                break
    rates = {name: 1.0 / max(s, 1e-9) for name, s in best_s.items()}
    winner = _fastest(rates)
    choice = PathChoice(winner, rates[winner], rates, rejected, build_s, time.perf_counter() - t0,
                        str(device), diffs[winner])
    return built[winner], choice


def _fastest(rates: dict[str, float]) -> str:
    """The candidate that runs: eager unless another beats it by ``MIN_GAIN``."""
    winner = EAGER
    for name, rate in rates.items():
        if name != EAGER and rate >= MIN_GAIN * rates[EAGER] and rate > rates[winner]:
            winner = name
    return winner


def follow(model, name: str, images: np.ndarray, batch_size: int = 512):
    """A copy of the LoadedModel on the path ``name`` that a probe elsewhere chose for it.

    A Ray worker follows its driver's choice instead of probing on its own: timings differ
    between machines, and two exact paths still differ in the last float bits, so only the
    same path gives the same calibration numbers. The path is built and checked against eager
    PyTorch on ``images`` (real digits) as the probe checks it, but not timed; one that cannot
    be built or is not exact here is an error, never a silent switch to another path."""
    device = torch.device(model.device)
    if getattr(model, "forward_path", None) is not None:
        return model
    if name == EAGER:
        return replace(model, forward_path=PathChoice(EAGER, 0.0, device=str(device)))
    builders = candidates(model.module, model.preprocess, device)
    if name not in builders:
        raise UserError(f"the forward path '{name}' chosen for {model.name} cannot run on {device}")
    src = torch.from_numpy(np.ascontiguousarray(images[:PROBE_IMAGES])).to(device)
    if len(src) == 0:
        src = torch.zeros(1, 28, 28, dtype=torch.uint8, device=device)
    checks = [src[:ODD_BATCH], *src.split(max(1, min(batch_size, PROBE_IMAGES)))]
    example = model.preprocess.apply_input(checks[1].to(torch.float32).div(255.0).unsqueeze(1))
    try:
        fast = builders[name](example)
        with torch.inference_mode():
            pairs = [(forward(fast, model.preprocess, b).float().cpu(),
                      forward(model.module, model.preprocess, b).float().cpu()) for b in checks]
    except Exception as exc:  # noqa: BLE001 - an export can fail in many ways
        raise UserError(f"the forward path '{name}' chosen for {model.name} cannot be built here "
                        f"({_first_line(exc)}); install the same robustmnist extras everywhere") from None
    worst = 0.0
    for got, want in pairs:
        ok, diff = _close(got, want)
        worst = max(worst, diff)
        if not ok:
            raise UserError(f"the forward path '{name}' chosen for {model.name} is not exact here (max "
                            f"|logit difference| {diff:.2g}); install the same package versions everywhere")
    choice = PathChoice(name, 0.0, device=str(device), max_abs_diff=worst, eager_module=model.module)
    return replace(model, module=fast, forward_path=choice)


def accelerate(model, images: np.ndarray, batch_size: int = 512, only: list[str] | None = None):
    """A copy of the LoadedModel running its fastest exact path (idempotent)."""
    if getattr(model, "forward_path", None) is not None or model.format == "predictions":
        return model  # already chosen; or scores made elsewhere (eval --predictions): nothing to run
    module, choice = choose(model.module, model.preprocess, images, model.device, batch_size, only)
    return replace(model, module=module, forward_path=replace(choice, eager_module=model.module))


def as_loaded(model):
    """The LoadedModel on its original module: what gradient-based attacks need."""
    choice = getattr(model, "forward_path", None)
    if choice is None or choice.eager_module is None:
        return model
    return replace(model, module=choice.eager_module, forward_path=None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
