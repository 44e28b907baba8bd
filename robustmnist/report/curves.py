"""Learning curves of a training run (loss and accuracy per epoch), as a PNG beside the model.

A PNG, not the report's SVG: it is written next to the checkpoint for a person to open, and
matplotlib is imported only when a curve is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from ..train.options import EpochStats


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
