"""A fast exact forward path for one model, chosen on measured evidence, not by guessing.

The same network runs several times faster on a CPU through a frozen TorchScript graph
(oneDNN conv+ReLU fusion) or an ONNX export run by onnxruntime than through eager PyTorch,
and which one wins depends on the network and the machine: conv nets gain most (4-5x over
the plain eager loop in benchmarks/score_paths.json), small MLPs far less. So each candidate
is built, checked against eager PyTorch on a few batches of real digits (every argmax equal,
logits within ``EXACT_ATOL``) and timed on the same batches. Timing noise must not choose, since
two exact paths differ in the last float bits of every result: a candidate is timed only where
the model's structure lets it help (``worth_timing``: channels-last only for convolutions, an MLP
stays eager), and one replaces eager only on evidence a busy neighbour cannot fake (``decide``:
clearly faster in the median of rounds interleaved with eager and in most of them, the first
such in a fixed preference order). A candidate that cannot be built or does not match is
dropped with the reason recorded, and those after a clear winner are not tried at all.

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
# Timing: each path against eager in rounds, taking turns at going first (a load spike or a cache
# left warm by the other then falls on each of them alike). A measurement repeats the batch for
# about ``MEASURE_S`` of eager time, so that a fast model is not timed on one 1 ms call that a
# single scheduler tick on a shared CPU can make 10x slower.
MEASURE_S = 0.01
MIN_ROUNDS = 5  # fewer is not evidence enough to leave eager (``decide``)
PROBE_ROUNDS = 15  # at most, per path
PROBE_SECONDS = 0.5  # a path's rounds stop after this once MIN_ROUNDS are done
PROBE_MAX_SECONDS = 6.0  # and every path's after this much of the probe: so busy a machine keeps eager
# Eager runs unless some path's median per-round speed-up is at least MIN_GAIN, faster in most
# rounds; then the first path in preference order that gains MIN_KEPT runs (``decide``). The noise
# to rise above: the old rule (each path's best single timing, 5% margin) put an MLP on
# channels-last "3.5x eager", a path that cannot speed it up. The gains to keep, on the project's
# 2 shared cores, quiet or with both cores busy: re-deciding the recorded timings of 101 probes of
# lenet5 and cnn-small (5 rounds or more), some path gained 1.4x or more in every one, and
# onnxruntime, the first, 1.2x or more; 1.5 for MIN_GAIN would have changed the choice of two.
MIN_GAIN = 1.3
MIN_KEPT = 1.1

EAGER = "eager"
ONNX = "onnxruntime"
FROZEN = "torchscript-frozen"
CHANNELS_LAST = "channels-last"


@dataclass(frozen=True)
class PathChoice:
    """Which forward path runs, and the probe that chose it (goes into results.json)."""

    name: str
    images_per_s: float  # the chosen path on the probe batches (its best round)
    rates: dict[str, float] = field(default_factory=dict)  # every candidate that passed
    rejected: dict[str, str] = field(default_factory=dict)  # candidate -> why it was dropped
    build_s: dict[str, float] = field(default_factory=dict)  # candidate -> export/trace seconds
    probe_s: float = 0.0  # building, checking and timing every candidate
    device: str = "cpu"
    max_abs_diff: float = 0.0  # of the chosen path vs eager on the probe
    eager_module: Any = field(default=None, repr=False, compare=False)  # the module as loaded
    # path -> (eager's, its seconds per image) in each round it was timed: what ``decide`` read
    times: dict[str, list[tuple[float, float]]] = field(default_factory=dict, repr=False, compare=False)

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
    times only those ``worth_timing``; a Ray worker can follow any of them).

    The order is the preference: the first that clearly beats eager runs (``decide``). onnxruntime
    was the fastest in every measurement of benchmarks/score_paths.json, then the frozen graph."""
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
        # speed on a quiet machine (around MIN_GAIN) but 2.4-5x with both cores busy (eager's
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
    """(the fastest exact module, the probe's record). ``images`` are real uint8 digits.

    ``only`` limits the candidates to those names (eager always stays one)."""
    device = torch.device(device)
    t0 = time.perf_counter()
    bs = max(1, min(batch_size, PROBE_IMAGES))
    src = torch.from_numpy(np.ascontiguousarray(images[:PROBE_IMAGES])).to(device)
    if len(src) == 0:
        src = torch.zeros(1, 28, 28, dtype=torch.uint8, device=device)
    batches = list(src.split(bs))
    odd = src[:ODD_BATCH]
    built: dict[str, Any] = {EAGER: module}
    rejected: dict[str, str] = {}
    diffs: dict[str, float] = {EAGER: 0.0}
    build_s: dict[str, float] = {}

    def run(mod: Any, xb: torch.Tensor) -> torch.Tensor:
        return forward(mod, preprocess, xb).float().cpu()

    with torch.inference_mode():
        # the odd batch first: every later call then sees the shape it was warmed up on
        reference = [run(module, b) for b in (odd, *batches)]
    # outside inference mode: tracing and export cannot take inference tensors
    example = preprocess.apply_input(batches[0].to(torch.float32).div(255.0).unsqueeze(1))
    builders = {k: v for k, v in candidates(module, preprocess, device).items()
                if worth_timing(k, module) and (only is None or k in only)}
    times: dict[str, list[tuple[float, float]]] = {}
    eager_s: list[float] = []  # seconds per image of every eager measurement, for its rate
    deadline = time.perf_counter() + PROBE_MAX_SECONDS
    for name, build in builders.items():
        if _settled(times):
            # the choice is made: it is the first path that gains MIN_KEPT, and none after the
            # one that gained MIN_GAIN can come before it. Building and timing the rest would
            # cost seconds (a slow conv net's check alone, with every core busy) for nothing
            rejected[name] = "not tried: an earlier path already beat eager clearly"
            continue
        t_build = time.perf_counter()
        try:
            fast = build(example)
            build_s[name] = time.perf_counter() - t_build
            with torch.inference_mode():
                outs = [run(fast, b) for b in (odd, *batches)]  # the check doubles as warm-up
        except Exception as exc:  # noqa: BLE001 - an export can fail in many ways; eager remains
            rejected[name] = f"failed: {_first_line(exc)}"
            continue
        worst = 0.0
        for got, want in zip(outs, reference, strict=True):
            ok, diff = _close(got, want)
            worst = max(worst, diff)
            if not ok:
                rejected[name] = f"not exact: max |logit difference| {diff:.2g} or a different argmax"
                break
        else:
            built[name] = fast
            diffs[name] = worst
            times[name] = _time_rounds(module, fast, lambda mod: run(mod, batches[0]), len(batches[0]),
                                       device, deadline)
            eager_s += [e for e, _ in times[name]]
    winner = decide(times)
    if not eager_s:  # eager is timed even alone: its rate goes into the record and the budget
        with torch.inference_mode():
            run(module, batches[0])
            eager_s = [_seconds(lambda: run(module, batches[0]), device) / len(batches[0])
                       for _ in range(MIN_ROUNDS)]
    # the rate recorded is each path's best round, as before the rounds decided: the budget's
    # estimates are calibrated on it, and a load spike during the probe does not shrink n
    rates = {EAGER: 1.0 / max(min(eager_s), 1e-12)}
    rates.update({name: 1.0 / max(min(p for _, p in rounds), 1e-12) for name, rounds in times.items() if rounds})
    choice = PathChoice(winner, rates[winner], rates, rejected, build_s, time.perf_counter() - t0,
                        str(device), diffs[winner], times=times)
    return built[winner], choice


def _time_rounds(eager: Any, fast: Any, call: Callable[[Any], Any], n: int, device: torch.device,
                 deadline: float) -> list[tuple[float, float]]:
    """(eager's, the path's seconds per image) in each round of the two timed in turn on n images."""
    rounds: list[tuple[float, float]] = []
    with torch.inference_mode():
        one = min(_seconds(lambda: call(eager), device) for _ in range(3))  # a spike aside
        t_rounds = time.perf_counter()
        for r in range(PROBE_ROUNDS):
            # both do the same work in a round, so its ratio holds whatever that is: it follows
            # eager's last time, so that a busy spell does not make every round take seconds
            calls = int(min(64, max(1, round(MEASURE_S / max(one, 1e-6)))))
            pair = [(lambda m=m, k=calls: [call(m) for _ in range(k)]) for m in (eager, fast)]
            first, second = pair if r % 2 == 0 else pair[::-1]  # ABBA: neither always goes first
            a, b = _seconds(first, device), _seconds(second, device)
            e, f = (a, b) if r % 2 == 0 else (b, a)
            rounds.append((e / (calls * n), f / (calls * n)))
            one = e / calls
            now = time.perf_counter()
            if (r + 1 >= MIN_ROUNDS and now - t_rounds > PROBE_SECONDS) or now > deadline:
                break
    return rounds


def _seconds(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def decide(times: dict[str, list[tuple[float, float]]], min_gain: float = MIN_GAIN,
           min_kept: float = MIN_KEPT) -> str:
    """The path that runs, from timings alone (a pure function: unit-tested on made-up numbers).

    ``times[name]`` holds, for each round that path ``name`` was timed against eager, the seconds
    per image of (eager, the path); paths come in preference order. A path's gain is its median
    speed-up over eager, round by round, counted only if it was faster in most rounds and timed
    in at least ``MIN_ROUNDS``: a round made fast (or eager made slow) by chance moves neither a
    median nor a majority. Eager runs unless some path gains ``min_gain``: the evidence that
    leaving eager pays. Then the first path in preference order that gains ``min_kept`` runs, not
    the fastest: which graph path is fastest changes with the machine's load (lenet5: frozen
    TorchScript 2.0x and onnxruntime 1.3-1.7x on a quiet machine, 1.4x and 1.6-2.8x with both
    cores busy), and the choice sets the results' last float bits, so it must not follow that."""
    gains = {name: _gain(rounds) for name, rounds in times.items()}
    if not any(g >= min_gain for g in gains.values()):
        return EAGER
    return next(name for name, g in gains.items() if g >= min_kept)


def _settled(times: dict[str, list[tuple[float, float]]]) -> bool:
    """Whether a path timed so far gained MIN_GAIN: then no path after it can change ``decide``."""
    return any(_gain(rounds) >= MIN_GAIN for rounds in times.values())


def _gain(rounds: list[tuple[float, float]]) -> float:
    """The median speed-up over eager round by round; 0 unless faster in most of MIN_ROUNDS or more."""
    ratios = [e / max(f, 1e-12) for e, f in rounds]
    if len(ratios) < MIN_ROUNDS or sum(r > 1.0 for r in ratios) <= len(ratios) / 2:
        return 0.0  # a lucky spell can fake one or two rounds, or a minority of them
    return float(np.median(ratios))


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
