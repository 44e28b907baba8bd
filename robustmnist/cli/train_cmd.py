"""``robustmnist train`` (one model) and ``robustmnist zoo`` (the published reference models)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import UserError
from ..fileio import atomic_write_json
from ..train.options import DATASETS, DEVICES, OPTIMIZERS, SCHEDULES, EpochStats, TrainCallbacks
from .common import console, out, parse_name_list, progress
from .flags import to_flags


class RichTrainProgress(TrainCallbacks):
    """A progress bar over all steps with the running loss/accuracy; warnings printed above it."""

    def __init__(self, bar):
        self.bar = bar
        self.task = None
        self.steps_per_epoch = 1
        self.epochs = 1

    def on_start(self, epochs: int, steps_per_epoch: int, description: str) -> None:
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.task = self.bar.add_task(description, total=epochs * steps_per_epoch,
                                      status="starting")

    def on_step(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        self.bar.update(self.task, completed=(epoch - 1) * self.steps_per_epoch + step,
                        status=f"epoch {epoch}/{self.epochs}  loss {loss:.4f}  "
                               f"acc {100 * accuracy:.2f}%")

    def on_epoch(self, stats: EpochStats) -> None:
        val = "" if stats.val_accuracy is None else f"  val acc {100 * stats.val_accuracy:.2f}%"
        self.bar.console.print(f"  epoch {stats.epoch}: loss {stats.train_loss:.4f}  "
                               f"acc {100 * stats.train_accuracy:.2f}%{val}  "
                               f"({stats.seconds:.1f} s)")

    def on_warning(self, message: str) -> None:
        self.bar.console.print(f"[bold yellow]warning:[/] {to_flags(message)}", highlight=False)


@contextmanager
def training_progress():
    """``with training_progress() as cb: train(..., progress=cb)`` (the demo uses this too)."""
    with progress(transient=True) as bar:
        yield RichTrainProgress(bar)


def history_table(run, title: str) -> Table:  # run: train.TrainRun
    table = Table(title=title, title_justify="left")
    for col in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"):
        table.add_column(col, justify="right")
    for h in run.history:
        table.add_row(
            str(h.epoch), f"{h.train_loss:.4f}", f"{100 * h.train_accuracy:.2f}%",
            "-" if h.val_loss is None else f"{h.val_loss:.4f}",
            "-" if h.val_accuracy is None else f"{100 * h.val_accuracy:.2f}%",
            f"{h.lr:.2g}", f"{h.seconds:.1f}",
        )
    return table


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise UserError(f"unknown {what} '{value}'. Use one of {', '.join(allowed)}")
    return value


def train_command(
    arch: Annotated[str, typer.Option("--arch", help="Zoo architecture (see `robustmnist zoo`)")],
    dataset: Annotated[str, typer.Option(help=f"One of {', '.join(DATASETS)}")] = "mnist",
    epochs: Annotated[int, typer.Option(help="Passes over the training split")] = 5,
    lr: Annotated[float, typer.Option(help="Learning rate (the peak with --schedule onecycle)")]
    = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Samples per step")] = 64,
    optimizer: Annotated[str, typer.Option(help="adam, or sgd (momentum 0.9)")] = "adam",
    schedule: Annotated[str, typer.Option(help=f"One of {', '.join(SCHEDULES)}")] = "constant",
    weight_decay: Annotated[float, typer.Option(help="L2 penalty")] = 0.0,
    val_split: Annotated[float, typer.Option(
        help="Fraction of the training split held out for validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for init, split, shuffling, augmentation")] = 0,
    augment: Annotated[str | None, typer.Option(
        help="Shifts or families to train on as augmentation, e.g. noise,blur,geometric")] = None,
    augment_fraction: Annotated[float, typer.Option(
        help="Share of each batch that --augment shifts")] = 0.5,
    adversarial: Annotated[str | None, typer.Option(
        help="Adversarial training: 'pgd' trains on PGD examples (Madry et al.)")] = None,
    adversarial_eps: Annotated[float, typer.Option(help="L-inf radius of --adversarial, 0-1 pixels")] = 0.3,
    adversarial_steps: Annotated[int, typer.Option(help="PGD steps per batch of --adversarial")] = 10,
    device: Annotated[str, typer.Option(help=f"One of {', '.join(DEVICES)}")] = "auto",
    threads: Annotated[int | None, typer.Option(
        help="CPU threads (default: torch's; 1 is often faster on a busy machine)")] = None,
    data_root: Annotated[Path | None, typer.Option(
        help="Data root (default: $ROBUSTMNIST_DATA or ~/.cache/robustmnist)")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Checkpoint to write")] = Path("model.pt"),
    torchscript: Annotated[bool, typer.Option(
        help="Also write a TorchScript copy (MODEL.ts.pt)")] = False,
) -> None:
    """Train a zoo architecture; writes a checkpoint and its learning curves (MODEL.curve.png)."""
    from ..train.loop import train  # torch: only once a command actually trains

    _choice(optimizer, OPTIMIZERS, "optimizer")
    _choice(dataset, DATASETS, "dataset")
    adv = None
    if adversarial:
        from ..attacks.training import AdversarialTraining

        adv = AdversarialTraining(adversarial, eps=adversarial_eps, steps=adversarial_steps)
    with training_progress() as cb:
        run = train(
            arch, dataset, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
            schedule=schedule, weight_decay=weight_decay, val_split=val_split, seed=seed,
            augment=parse_name_list(augment) if augment else None,
            augment_fraction=augment_fraction, device=device, threads=threads,
            data_root=data_root, progress=cb, adversarial=adv,
        )
    out.print(history_table(run, f"{arch} on {dataset}"))
    if run.diverged:
        # A NaN model is worse than none: never overwrite a previous good checkpoint with it.
        console.print(f"[bold red]training diverged; nothing written.[/] {run.warnings[-1]}")
        raise typer.Exit(1)
    written = run.save(out_path, torchscript=torchscript)
    out.print(f"test accuracy: [bold]{100 * run.test_accuracy:.2f}%[/] "
              f"({run.checkpoint['training']['data']['n_test']} test images, "
              f"{run.seconds:.0f} s)")
    if run.warnings:
        out.print(f"[yellow]{len(run.warnings)} warning(s) recorded in the checkpoint[/]")
    out.print("wrote " + ", ".join(str(p) for p in written))


def _load_zoo_table(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("models", [])
        return {r["name"]: r for r in rows}
    except (ValueError, KeyError, TypeError, AttributeError):
        console.print(f"[yellow]warning:[/] {path} is unreadable; starting a new table")
        return {}


def zoo_table(rows: list[dict[str, Any]]) -> Table:
    """Accuracy next to the published figure; each entry's note goes in the caption."""
    table = Table(title="zoo: MNIST test accuracy", title_justify="left", caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("model", no_wrap=True)
    for col in ("optimizer", "batch", "epochs", "test", "paper", "sec"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        published = "-" if r["published_accuracy"] is None else f"{100 * r['published_accuracy']:.2f}%"
        table.add_row(r["name"], f"{r['optimizer']} {r['lr']:g}", str(r["batch_size"]),
                      f"{r['epochs_run']}/{r['epochs_published']}",
                      f"{100 * r['test_accuracy']:.2f}%", published, f"{r['seconds']:.0f}")
    table.caption = "\n".join(f"{r['name']}: {r['note']}" for r in rows)
    return table


def zoo_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the checkpoints and zoo.json")]
    = Path("zoo"),
    epochs_scale: Annotated[float, typer.Option(
        help="Multiply every entry's epochs (e.g. 0.2 for a quick pass); recorded in zoo.json")]
    = 1.0,
    only: Annotated[str | None, typer.Option(help="Comma list of entries to train")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every entry")] = 0,
    device: Annotated[str, typer.Option(help=f"One of {', '.join(DEVICES)}")] = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: torch's)")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Data root")] = None,
) -> None:
    """Train the reference models (published MLP settings, two CNNs, an augmented CNN).

    Rows of zoo.json are merged, so entries trained in separate runs (--only) share one table.
    """
    from ..models.recipes import scaled_epochs, zoo_entries
    from ..train.loop import train
    from ..train.run import zoo_record

    entries = zoo_entries(parse_name_list(only))
    for e in entries:  # validate before spending minutes on the first entry
        scaled_epochs(e.settings["epochs"], epochs_scale)
    table_path = out_dir / "zoo.json"
    rows = _load_zoo_table(table_path)
    for entry in entries:
        settings = dict(entry.settings)
        settings["epochs"] = scaled_epochs(settings["epochs"], epochs_scale)
        console.print(f"[bold]{entry.name}[/]: {entry.note}")
        with training_progress() as cb:
            run = train(entry.arch, "mnist", seed=seed, device=device, threads=threads,
                        data_root=data_root, progress=cb, **settings)
        if run.diverged:
            console.print(f"[bold red]{entry.name} diverged; not written.[/] {run.warnings[-1]}")
            continue
        path = out_dir / f"{entry.name}.pt"
        run.save(path)
        rows[entry.name] = zoo_record(entry, run, epochs_scale, path.name)
        # Written after every entry so an interrupted zoo run keeps what it finished.
        atomic_write_json(table_path, {"schema_version": 1, "dataset": "mnist",
                                       "models": list(rows.values())})
        console.print(f"  test accuracy {100 * run.test_accuracy:.2f}% in {run.seconds:.0f} s")
    out.print(zoo_table(list(rows.values())))
    out.print(f"wrote {table_path}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("zoo")(zoo_command)
