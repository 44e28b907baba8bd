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

The guards and argument checks are in checks.py, the finished run (saving, TorchScript, curves)
in run.py, augmentation in augment.py; the zoo's and the demo's settings in models/recipes.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..data.datasets import TrainData, load_training_data
from ..errors import UserError
from ..models.checkpoint import make_checkpoint
from ..models.device import resolve_device
from ..models.preprocess import Preprocess
from ..models.zoo import get_arch
from ..shifts.registry import resolve_names
from ..shifts.sets import derive_seed
from .augment import Augmenter, plan_augmentation
from .batches import as_unit_float, split_validation
from .checks import Guards, bright_border_fraction, validate_args
from .options import EpochStats, TrainCallbacks
from .run import TrainRun

SGD_MOMENTUM = 0.9  # plain SGD without momentum needs far more epochs than anyone wants to wait
LOG_EVERY = 20  # steps between progress reports (each one is a device sync)
EVAL_BATCH = 1000


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a set, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(images), batch_size):
        xb = as_unit_float(images[start : start + batch_size]).to(device)
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
    validate_args(dataset, epochs, lr, batch_size, optimizer, weight_decay, val_split, schedule,
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
            raise UserError(f"`augment=` needs 1×28×28 images; {data.name} has "
                            f"{'×'.join(map(str, data.input_shape))}")
        plan = plan_augmentation(augment, augment_suite, digits=data.digits)
        augmenter = Augmenter(plan, seed, augment_fraction)
        for note in plan.notes:
            callbacks.on_warning(f"`augment=`: {note}")
        for skipped in plan.skipped:
            callbacks.on_warning(f"`augment=`: not using {skipped}")

    train_idx, val_idx = split_validation(len(data.train_images), val_split, seed)
    x_train, y_train = data.train_images[train_idx], data.train_labels[train_idx]
    x_val, y_val = data.train_images[val_idx], data.train_labels[val_idx]

    guards = Guards(callbacks, len(data.classes))
    if data.digits:
        guards.check_polarity(bright_border_fraction(x_train))

    # Seed the initialisation without disturbing the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch_info.builder(**kwargs)
    model = model.to(dev).train()
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    sched = _make_scheduler(schedule, opt, lr, epochs * steps_per_epoch)
    if adversarial is not None:  # "pgd", a dict or attacks.training.AdversarialTraining: batches become PGD examples
        from ..attacks.training import AdversarialStep

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
        # eval reads "families" to mark these shifts seen in training (robustmnist/run/seen.py).
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
         augmenter, dev, guards: Guards, callbacks: TrainCallbacks
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
                 epoch, guards: Guards, callbacks: TrainCallbacks) -> _EpochResult:
    perm = torch.randperm(len(x_train), generator=shuffle_g)
    # Running sums stay on the device; reading them (a sync) happens only every LOG_EVERY steps.
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    lo, hi = torch.tensor(math.inf), torch.tensor(-math.inf)
    seen = 0
    steps = math.ceil(len(x_train) / batch_size)
    for step in range(steps):
        idx = perm[step * batch_size : (step + 1) * batch_size]
        xb, yb = as_unit_float(x_train[idx]), y_train[idx]
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
