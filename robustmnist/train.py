"""Training: the loop behind ``robustmnist train``, ``robustmnist zoo`` and the demo.

``train(arch, dataset, ...)`` returns a ``TrainRun``: the trained model, a robustmnist checkpoint
(architecture, kwargs, preprocess spec, config, per-epoch history, test accuracy, warnings,
versions), and a PNG of the learning curves.

Three choices worth knowing:

- **Deterministic on CPU.** Initialisation, the validation split, shuffling and augmentation each
  draw from their own generator derived from ``seed``, so the same call gives bit-identical
  weights twice, and the caller's global RNG is left untouched.
- **Validation comes out of the training split**, never the test set: the test set is touched
  once, after training, so the reported test accuracy is not tuned on.
- **Sanity guards** catch the usual silent failures while training: a loss that becomes NaN/inf
  (training stops), accuracy still at chance after an epoch, and inputs outside the 0-1,
  white-on-black convention the checkpoint declares. Each becomes a warning the CLI shows and
  the checkpoint records in ``training["warnings"]``, so ``doctor`` can see it later.

Data stays in memory as uint8 and is scaled per batch (no DataLoader workers: on a small CPU
box the inter-process copies cost more than the loading they would hide).
"""

from __future__ import annotations

import copy
import io
import math
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .augment import FONT_POOL_PER_LEVEL, Augmenter, AugmentPlan, plan_augmentation
from .data.datasets import (
    CIFAR10_CLASSES,
    DATASETS,
    FASHION_CLASSES,
    TrainData,
    load_cifar10_rgb,
    load_training_data,
)
from .errors import UserError
from .fileio import atomic_write_bytes
from .models.checkpoint import make_checkpoint, save_checkpoint
from .models.preprocess import Preprocess
from .models.zoo import get_arch
from .shifts.registry import resolve_names
from .shifts.sets import derive_seed

# The option lists and callback types live in a torch-free module, so `robustmnist --help`
# can show them without importing torch; re-exported here for existing callers.
from .train_options import (  # noqa: E402, F401
    DEVICES,
    OPTIMIZERS,
    SCHEDULES,
    EpochStats,
    TrainCallbacks,
    TrainingWarning,
)

SGD_MOMENTUM = 0.9  # plain SGD without momentum needs far more epochs than anyone wants to wait

# Short schedules the demo trains (lenet5 + the tapering MLP in about a minute on a 2-core CPU).
# One-cycle lets Adam take a large learning rate in the middle of training and anneal it to
# nothing by the end, which is what buys lenet5 >98.5% in three epochs. One thread: on a shared
# box two OpenMP threads spin-wait for a core and ran 9x slower (446 s vs 48 s, measured).
DEMO_SCHEDULES: dict[str, dict[str, Any]] = {
    "lenet5": {"epochs": 3, "lr": 3e-3, "batch_size": 128, "optimizer": "adam",
               "schedule": "onecycle", "threads": 1},
    "mlp-784-256-128-64-10": {"epochs": 4, "lr": 2e-3, "batch_size": 128, "optimizer": "adam",
                              "schedule": "onecycle", "threads": 1},
}

CHANCE_MARGIN = 1.5  # "at chance" = accuracy below 1.5 × 1/classes after a full epoch
RANGE_TOLERANCE = 1e-3
LOG_EVERY = 20  # steps between progress reports (each one is a device sync)
EVAL_BATCH = 1000


# Moved to data.py and augment.py; still importable from here for existing callers.
__all__ = ["CIFAR10_CLASSES", "DATASETS", "FASHION_CLASSES", "FONT_POOL_PER_LEVEL", "AugmentPlan",
           "Augmenter", "TrainData", "load_cifar10_rgb", "load_training_data",
           "plan_augmentation"]


def _as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]; float input is passed through (the range guard checks it)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def split_validation(n: int, val_split: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): a seeded random hold-out, independent of every other seed use."""
    g = torch.Generator().manual_seed(derive_seed("robustmnist-train-split", seed))
    perm = torch.randperm(n, generator=g)
    n_val = int(round(n * val_split))
    if val_split > 0 and n_val == 0:
        n_val = 1
    return perm[n_val:].sort().values, perm[:n_val].sort().values


# -- progress and guards ----------------------------------------------------------------------


class _Guards:
    """The sanity checks; each fires at most once and records its message."""

    def __init__(self, callbacks: TrainCallbacks, n_classes: int):
        self.callbacks = callbacks
        self.chance = 1.0 / n_classes
        self.messages: list[str] = []
        self._fired: set[str] = set()

    def warn(self, key: str, message: str) -> None:
        if key in self._fired:
            return
        self._fired.add(key)
        self.messages.append(message)
        self.callbacks.on_warning(message)

    def check_range(self, lo: float, hi: float) -> None:
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            self.warn("range", f"training inputs span [{lo:.4g}, {hi:.4g}] but the checkpoint "
                      "declares range 0-1: scale images to [0, 1] (divide uint8 pixels by 255)")
        elif hi < 0.05:
            self.warn("range", f"training inputs never exceed {hi:.4g}: were the pixels divided "
                      "by 255 twice? The checkpoint declares range 0-1")

    def check_polarity(self, bright_border_fraction: float) -> None:
        if bright_border_fraction > 0.5:
            self.warn("polarity", f"{bright_border_fraction:.0%} of training images have a "
                      "bright border (dark digits on light paper) but the checkpoint declares "
                      "white-on-black: invert them (1 - x) to match MNIST")

    def check_chance(self, epoch: int, accuracy: float, which: str) -> None:
        if accuracy < CHANCE_MARGIN * self.chance:
            self.warn("chance", f"{which} accuracy is {accuracy:.1%} after epoch {epoch}, "
                      f"chance level is {self.chance:.0%}: the model is not learning. Check the "
                      "learning rate, the labels and the input range")


def _bright_border_fraction(images: torch.Tensor, sample: int = 2000) -> float:
    """Share of images whose border median is above mid-grey (data.normalise_polarity's test)."""
    x = _as_unit_float(images[:sample])
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    return (border.flatten(1).median(dim=1).values > 0.5).float().mean().item()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class TrainRun:
    model: nn.Module
    checkpoint: dict[str, Any]
    history: list[EpochStats]
    test_accuracy: float
    test_loss: float
    warnings: list[str]
    diverged: bool
    seconds: float
    title: str = ""
    _png: bytes | None = field(default=None, repr=False)

    @property
    def curve_png(self) -> bytes:
        """The learning-curve PNG, drawn on first use (matplotlib costs a second or two)."""
        if self._png is None:
            self._png = curve_png(self.history, self.title, self.test_accuracy, self.warnings)
        return self._png

    def save(self, path: str | Path, torchscript: bool = False) -> list[Path]:
        """Write model.pt, model.curve.png and (optionally) model.ts.pt; returns the paths."""
        path = Path(path)
        stem = path.with_suffix("") if path.suffix else path
        written = [path, stem.with_name(stem.name + ".curve.png")]
        save_checkpoint(path, self.checkpoint)
        atomic_write_bytes(written[1], self.curve_png)
        if torchscript:
            written.append(stem.with_name(stem.name + ".ts.pt"))
            preprocess = Preprocess.from_dict(self.checkpoint["preprocess"])
            atomic_write_bytes(written[2], torchscript_bytes(self.model, preprocess))
        return written


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


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise UserError(f"unknown device '{name}'. Use one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "mps" and not mps_ok:
        raise UserError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a set, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        xb = _as_unit_float(images[start : start + batch_size]).to(device)
        yb = labels[start : start + batch_size].to(device)
        logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(len(images), 1)
    return loss_sum.item() / n, correct.item() / n


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def _make_scheduler(name: str, opt: torch.optim.Optimizer, lr: float, total_steps: int):
    """A per-step scheduler (or None for a constant learning rate)."""
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return None


def _validate_args(dataset: str, epochs: int, lr: float, batch_size: int, optimizer: str,
                   weight_decay: float, val_split: float, schedule: str,
                   augment_fraction: float, threads: int | None) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset '{dataset}'. Known: {', '.join(DATASETS)}")
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{optimizer}'. Use one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule '{schedule}'. Use one of {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"learning rate must be a positive number, got {lr}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    if weight_decay < 0:
        raise UserError(f"weight decay must be zero or positive, got {weight_decay}")
    if not 0 <= val_split < 1:
        raise UserError(f"validation split must be in [0, 1), got {val_split}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    if not 0 < augment_fraction <= 1:
        raise UserError(f"augment fraction must be in (0, 1], got {augment_fraction}")


def _arch_kwargs_for(dataset: str, arch_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(arch_kwargs or {})
    if dataset == "cifar10-rgb":
        kwargs.setdefault("in_channels", 3)
        kwargs.setdefault("image_size", 32)
    return kwargs


def train(
    arch: str,
    dataset: str = "mnist",
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    val_split: float = 0.1,
    seed: int = 0,
    augment: str | Sequence[str] | None = None,
    augment_fraction: float = 0.5,
    augment_suite: str = "default",
    schedule: str = "constant",
    device: str = "auto",
    data_root: str | Path | None = None,
    data: TrainData | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    threads: int | None = None,
    progress: TrainCallbacks | None = None,
    adversarial: Any = None,
) -> TrainRun:
    """Train a zoo architecture on a dataset and return the model, checkpoint and curves.

    ``dataset`` is mnist, fashion, cifar10 (28×28 grayscale, zoo archs as-is) or cifar10-rgb
    (32×32 RGB; ``in_channels``/``image_size`` are passed to the architecture). ``data`` replaces
    the named dataset with tensors of your own. ``augment`` names shifts or families of the
    catalog (resolved like ``--shift``) used as training augmentation. ``threads`` sets torch's
    CPU threads for this call only (on a busy machine 1 is often several times faster than the
    default, because idle OpenMP threads spin while they wait for a core).
    """
    t_start = time.perf_counter()
    _validate_args(dataset, epochs, lr, batch_size, optimizer, weight_decay, val_split, schedule,
                   augment_fraction, threads)
    arch_info = get_arch(arch)  # unknown names fail here, before any data is read
    kwargs = _arch_kwargs_for(dataset, arch_kwargs)
    dev = resolve_device(device)
    if augment:
        augment = resolve_names(augment if isinstance(augment, str) else list(augment))
    callbacks = progress or TrainCallbacks()
    if data is None:
        data = load_training_data(dataset, data_root)

    plan = augmenter = None
    if augment:
        if data.input_shape != (1, 28, 28):
            raise UserError(f"--augment needs 1×28×28 images; {data.name} has "
                            f"{'×'.join(map(str, data.input_shape))}")
        plan = plan_augmentation(augment, augment_suite, digits=data.digits)
        augmenter = Augmenter(plan, seed, augment_fraction)
        for note in plan.notes:
            callbacks.on_warning(f"--augment: {note}")
        for skipped in plan.skipped:
            callbacks.on_warning(f"--augment: not using {skipped}")

    train_idx, val_idx = split_validation(len(data.train_images), val_split, seed)
    x_train, y_train = data.train_images[train_idx], data.train_labels[train_idx]
    x_val, y_val = data.train_images[val_idx], data.train_labels[val_idx]

    guards = _Guards(callbacks, len(data.classes))
    if data.digits:
        guards.check_polarity(_bright_border_fraction(x_train))

    # Seed the initialisation without disturbing the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch_info.builder(**kwargs)
    model = model.to(dev).train()
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    sched = _make_scheduler(schedule, opt, lr, epochs * steps_per_epoch)
    if adversarial is not None:  # "pgd", a dict or attacks.training.AdversarialTraining: batches become PGD examples
        from .attacks.training import AdversarialStep

        augmenter = AdversarialStep(model, adversarial, seed, epochs * steps_per_epoch, inner=augmenter)
        adversarial = augmenter.cfg
    shuffle_g = torch.Generator().manual_seed(derive_seed("robustmnist-train-shuffle", seed))

    callbacks.on_start(epochs, steps_per_epoch, f"{arch} on {data.name}")
    with _cpu_settings(dev, threads):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        history, diverged = _fit(model, opt, sched, epochs, x_train, y_train, x_val, y_val,
                                 batch_size, shuffle_g, augmenter, dev, guards, callbacks)
        # CPU time next to wall time: on a shared machine the wall clock mostly measures others.
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if diverged:
            guards.warn("nan", (
                f"training diverged: the loss became NaN/inf in epoch {len(history) + 1}, so "
                f"training stopped early. The learning rate {lr:g} is probably too high for "
                f"{optimizer}; try {lr / 10:g}"))
        test_loss, test_acc = evaluate(model, data.test_images, data.test_labels, dev)
    model = model.cpu().eval()

    config = {
        "arch": arch, "arch_kwargs": kwargs, "dataset": data.name, "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "optimizer": optimizer,
        "momentum": SGD_MOMENTUM if optimizer == "sgd" else None,
        "weight_decay": weight_decay, "val_split": val_split, "seed": seed,
        "schedule": schedule, "device": str(dev),
        "augment": plan.names if plan else None,
        "augment_fraction": augment_fraction if plan else None,
        "adversarial": adversarial.to_dict() if adversarial is not None else None,
    }
    training = {
        "config": config,
        "data": {"name": data.name, "n_train": len(x_train), "n_val": len(x_val),
                 "n_test": len(data.test_images), "input_shape": list(data.input_shape),
                 "classes": list(data.classes)},
        "history": [h.to_dict() for h in history],
        "epochs_run": len(history),
        "test_accuracy": test_acc,
        "test_loss": test_loss if math.isfinite(test_loss) else None,
        "diverged": diverged,
        "warnings": list(guards.messages),
        # eval reads "families" to mark these shifts seen in training (robustmnist/seen.py).
        "augment": None if plan is None else {
            "suite": plan.suite, "shifts": plan.names, "families": plan.families,
            "skipped": list(plan.skipped), "notes": list(plan.notes),
            "font_split": "train"},
        "train_seconds": round(wall, 3),
        "train_cpu_seconds": round(cpu, 3),
        "samples_per_second": round(len(history) * len(x_train) / wall, 1) if wall > 0 else None,
        "torch_threads": threads or torch.get_num_threads(),
        "deterministic": dev.type == "cpu",
    }
    # Zoo models train on 0-1, white-on-black inputs in the layout their architecture names.
    preprocess = Preprocess(range="0-1", polarity="normal", layout=arch_info.layout)
    checkpoint = make_checkpoint(arch, model, preprocess, training, kwargs)
    return TrainRun(model, checkpoint, history, test_acc, test_loss, list(guards.messages),
                    diverged, time.perf_counter() - t_start, title=f"{arch} on {data.name}")


@contextmanager
def _cpu_settings(dev: torch.device, threads: int | None):
    """Scoped thread count and (on CPU) deterministic algorithms; both restored afterwards."""
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    if dev.type == "cpu":
        # Every CPU kernel used here is deterministic; this turns a future regression into an
        # error instead of silently different weights. (CUDA would also need a cuBLAS setting.)
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_num_threads(threads_before)


def _fit(model, opt, sched, epochs, x_train, y_train, x_val, y_val, batch_size, shuffle_g,
         augmenter, dev, guards: _Guards, callbacks: TrainCallbacks
         ) -> tuple[list[EpochStats], bool]:
    """The epochs: train, validate, check. Returns (history, diverged)."""
    history: list[EpochStats] = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        result = _train_epoch(model, opt, sched, x_train, y_train, batch_size, shuffle_g,
                              augmenter, dev, epoch, guards, callbacks)
        if result.diverged:
            return history, True
        val_loss = val_acc = None
        if len(x_val):
            val_loss, val_acc = evaluate(model, x_val, y_val, dev)
        guards.check_chance(epoch, result.accuracy if val_acc is None else val_acc,
                            "training" if val_acc is None else "validation")
        stats = EpochStats(epoch, result.loss, result.accuracy, val_loss, val_acc, result.lr,
                           time.perf_counter() - t0)
        history.append(stats)
        callbacks.on_epoch(stats)
    return history, False


@dataclass(frozen=True)
class _EpochResult:
    loss: float
    accuracy: float
    lr: float  # at the end of the epoch
    diverged: bool


def _train_epoch(model, opt, sched, x_train, y_train, batch_size, shuffle_g, augmenter, dev,
                 epoch, guards: _Guards, callbacks: TrainCallbacks) -> _EpochResult:
    perm = torch.randperm(len(x_train), generator=shuffle_g)
    # Running sums stay on the device; reading them (a sync) happens only every LOG_EVERY steps.
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    lo, hi = torch.tensor(math.inf), torch.tensor(-math.inf)
    seen = 0
    steps = math.ceil(len(x_train) / batch_size)
    for step in range(steps):
        idx = perm[step * batch_size : (step + 1) * batch_size]
        xb, yb = _as_unit_float(x_train[idx]), y_train[idx]
        if augmenter is not None:
            xb, yb = augmenter(xb, yb)
        mn, mx = torch.aminmax(xb)
        lo, hi = torch.minimum(lo, mn), torch.maximum(hi, mx)
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        loss_sum += loss.detach().double() * len(yb)
        correct += (logits.detach().argmax(1) == yb).sum()
        seen += len(yb)
        if (step + 1) % LOG_EVERY == 0 or step + 1 == steps:
            running, acc = loss_sum.item() / seen, correct.item() / seen
            if not math.isfinite(running):
                return _EpochResult(running, acc, opt.param_groups[0]["lr"], diverged=True)
            guards.check_range(lo.item(), hi.item())
            callbacks.on_step(epoch, step + 1, running, acc)
    return _EpochResult(loss_sum.item() / seen, correct.item() / seen,
                        opt.param_groups[0]["lr"], diverged=False)


# -- curves -----------------------------------------------------------------------------------


def curve_png(history: list[EpochStats], title: str, test_accuracy: float | None = None,
              notes: Sequence[str] = ()) -> bytes:
    """Loss and accuracy per epoch, train vs validation, the generalisation gap shaded."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=110, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h.epoch for h in history]
    has_val = any(h.val_loss is not None for h in history)
    train_color, val_color = "#1f77b4", "#d62728"
    # Training numbers are means over the epoch while the weights were still moving, so early
    # on they sit below validation; only the opposite (validation worse) is overfitting.
    train_label = "train (mean over epoch)"
    train_loss = [h.train_loss for h in history]
    train_acc = [100 * h.train_accuracy for h in history]
    ax_loss.plot(epochs, train_loss, "o-", color=train_color, label=train_label)
    ax_acc.plot(epochs, train_acc, "o-", color=train_color, label=train_label)
    if has_val:
        val_loss = [h.val_loss for h in history]
        val_acc = [100 * h.val_accuracy for h in history]  # type: ignore[operator]
        ax_loss.plot(epochs, val_loss, "s-", color=val_color, label="validation")
        ax_acc.plot(epochs, val_acc, "s-", color=val_color, label="validation")
        over_loss = [v > t for v, t in zip(val_loss, train_loss, strict=True)]
        over_acc = [v < t for v, t in zip(val_acc, train_acc, strict=True)]
        ax_loss.fill_between(epochs, train_loss, val_loss, where=over_loss, interpolate=True,
                             color=val_color, alpha=0.15, label="overfitting gap")
        ax_acc.fill_between(epochs, train_acc, val_acc, where=over_acc, interpolate=True,
                            color=val_color, alpha=0.15, label="overfitting gap")
    if test_accuracy is not None and history:
        ax_acc.axhline(100 * test_accuracy, color="#2ca02c", ls="--", lw=1,
                       label=f"test {100 * test_accuracy:.2f}%")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 15 else epochs[:: math.ceil(len(epochs) / 15)])
            ax.legend(fontsize=8)
    heading = title if not notes else f"{title}  —  {len(notes)} warning(s), see checkpoint"
    fig.suptitle(heading, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# -- the zoo ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    name: str  # file stem in the zoo folder
    arch: str
    settings: dict[str, Any]  # keyword arguments of train()
    published: float | None  # published MNIST test accuracy for these settings, if any
    note: str


ZOO_AUGMENT = "noise,blur,smear,geometric,fonts"

ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("mlp-784-50-50-10", "mlp-784-50-50-10",
             {"optimizer": "adam", "lr": 1e-3, "batch_size": 50, "epochs": 10}, 0.9724,
             "published settings"),
    ZooEntry("mlp-784-256-128-64-10", "mlp-784-256-128-64-10",
             {"optimizer": "adam", "lr": 1e-4, "batch_size": 64, "epochs": 15}, 0.9774,
             "published settings; batch size not published, 64 is our choice"),
    ZooEntry("mlp-784-1000x3-10", "mlp-784-1000x3-10",
             {"optimizer": "adam", "lr": 1e-4, "batch_size": 50, "epochs": 50}, 0.9832,
             "published settings"),
    ZooEntry("lenet5", "lenet5",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle"}, None,
             "our settings (ReLU/max-pool LeNet-5 has no canonical recipe)"),
    ZooEntry("cnn-small", "cnn-small",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle"}, None, "our settings"),
    ZooEntry("cnn-small-augment", "cnn-small",
             {"optimizer": "adam", "lr": 3e-3, "batch_size": 128, "epochs": 6,
              "schedule": "onecycle", "augment": ZOO_AUGMENT}, None,
             f"as cnn-small, plus --augment {ZOO_AUGMENT} on half of each batch"),
    ZooEntry("lenet5-pgd", "lenet5",
             {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 4, "schedule": "onecycle",
              "adversarial": {"method": "pgd", "eps": 0.3, "steps": 5}}, None,
             "PGD adversarial training (Madry et al.) at L-inf 0.3, scaled to a CPU: 5 steps of 0.15, "
             "eps ramped over the first 30% of steps"),
)


def zoo_entries(only: Sequence[str] | None = None) -> list[ZooEntry]:
    if not only:
        return list(ZOO)
    known = {e.name: e for e in ZOO}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise UserError(f"unknown zoo entry {', '.join(unknown)}. Entries: {', '.join(known)}")
    return [known[n] for n in only]


def scaled_epochs(epochs: int, scale: float) -> int:
    if not scale > 0:
        raise UserError(f"--epochs-scale must be positive, got {scale}")
    return max(1, round(epochs * scale))


def zoo_record(entry: ZooEntry, run: TrainRun, scale: float, path: str) -> dict[str, Any]:
    """One row of zoo.json: what was asked, what ran, what came out."""
    cfg = run.checkpoint["training"]["config"]
    return {
        "name": entry.name, "arch": entry.arch, "checkpoint": path,
        "optimizer": cfg["optimizer"], "lr": cfg["lr"], "batch_size": cfg["batch_size"],
        "schedule": cfg["schedule"], "augment": cfg["augment"],
        "epochs_published": entry.settings["epochs"], "epochs_run": len(run.history),
        "epochs_scale": scale, "test_accuracy": round(run.test_accuracy, 5),
        "published_accuracy": entry.published,
        "seconds": round(run.seconds, 1), "warnings": run.warnings, "note": entry.note,
    }
