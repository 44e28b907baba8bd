"""Data root and loaders. Every loader returns uint8 N×28×28 images (white on black) + labels.

Data root: ``--data-root`` > ``ROBUSTMNIST_DATA`` > ``~/.cache/robustmnist``. The layout is
torchvision's (``ROOT/MNIST/raw/...``, ``ROOT/FashionMNIST/raw/...``); CIFAR-10 may also be an
image folder ``ROOT/CIFAR10/test/<class>/*.jpg`` (the offline mirror has only that).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .photo import POLARITIES, frame_real

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"}


def data_root(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("ROBUSTMNIST_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "robustmnist"


def cache_dir() -> Path:
    """Where generated sets are cached (never inside the data root, which may be read-only)."""
    env = os.environ.get("ROBUSTMNIST_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "robustmnist" / "sets"


@dataclass(frozen=True)
class DigitSet:
    images: np.ndarray  # uint8 N×28×28
    labels: np.ndarray  # int64 N (−1 where there is no digit label, e.g. OOD sets)
    name: str


_TV_NAMES = {"mnist": "MNIST", "fashion": "FashionMNIST"}
_RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _offline_message(dataset: str, root: Path) -> str:
    folder = _TV_NAMES[dataset]
    imgs, labels = _RAW_FILES["test"]
    where = f"{root} does not exist" if not root.exists() else f"{folder} not found under {root}"
    return (
        f"{where} and it could not be downloaded. Expected {root}/{folder}/raw/{imgs} and "
        f"{labels} (and train-*). Point `data_root=` or ROBUSTMNIST_DATA at a folder with that "
        "layout (see the README, 'Offline use and the data root')."
    )


def _remove_new(paths: list[Path]) -> None:
    """Undo a failed download: remove the topmost folder it created (with what the attempt
    put there), so a failed command leaves nothing behind."""
    import shutil

    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def _torchvision_dataset(dataset: str, root: Path, train: bool):
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion": datasets.FashionMNIST}[dataset]
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass  # not there: try to download below
    if os.environ.get("ROBUSTMNIST_OFFLINE"):
        raise UserError(_offline_message(dataset, root))
    # What a download would create, so a failed one can take it back: --data-root /typo must
    # not leave /typo/MNIST/raw behind.
    target = root / _TV_NAMES[dataset]
    created = [q for q in (root, target) if not q.exists()][:1]
    # Bound every network wait so an offline machine fails fast instead of hanging.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        return cls(str(root), train=train, download=True)
    except Exception:  # noqa: BLE001 - any download failure means the same thing to the user
        _remove_new(created)
        raise UserError(_offline_message(dataset, root)) from None
    finally:
        socket.setdefaulttimeout(old)


def load_torchvision(dataset: str, split: str = "test", root: str | os.PathLike | None = None) -> DigitSet:
    """MNIST or Fashion-MNIST through torchvision (download attempted if missing)."""
    if dataset not in _TV_NAMES:
        raise UserError(f"unknown dataset '{dataset}'. Known: {', '.join(_TV_NAMES)}")
    if split not in _RAW_FILES:
        raise UserError(f"unknown split '{split}'; use train or test")
    r = data_root(root)
    if not r.exists() and (root or os.environ.get("ROBUSTMNIST_DATA")):
        # A named folder that is not there is a typo far more often than a wish to download
        # into a new folder: say so and create nothing (the default cache root still downloads).
        folder = _TV_NAMES[dataset]
        raise UserError(f"data root {r} does not exist; point `data_root=` or ROBUSTMNIST_DATA at "
                        f"the folder holding {folder}/raw/{_RAW_FILES['test'][0]} and the other "
                        "raw files (see the README, 'Offline use and the data root'), or create "
                        f"the folder first to download {folder} into it")
    ds = _torchvision_dataset(dataset, r, train=(split == "train"))
    images = ds.data.numpy().astype(np.uint8, copy=False)
    labels = ds.targets.numpy().astype(np.int64, copy=False)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"{dataset} under {r} has images of shape {images.shape[1:]}, expected 28×28")
    return DigitSet(images, labels, f"{dataset}-{split}")


def load_mnist(split: str = "test", root: str | os.PathLike | None = None) -> DigitSet:
    return load_torchvision("mnist", split, root)


def load_fashion(split: str = "test", root: str | os.PathLike | None = None) -> DigitSet:
    return load_torchvision("fashion", split, root)


def list_image_folder(folder: Path) -> tuple[list[Path], list[str]]:
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist or is not a folder")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes:
        files = [
            (p, c)
            for c in classes
            for p in sorted((folder / c).rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ]
    else:
        files = [(p, "") for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(
            f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
            "directly or in class sub-folders)"
        )
    return [p for p, _ in files], [c for _, c in files]


def read_gray(paths: list[Path], size: int | None = None) -> list[np.ndarray]:
    """Read images as float32 grayscale in [0, 1]; optionally resized (antialiased) to size×size."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("L")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.LANCZOS)
                out.append(np.asarray(im, dtype=np.float32) / 255.0)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"cannot read image {p}: {exc}") from None
    return out


def load_cifar10_gray(root: str | os.PathLike | None = None, split: str = "test") -> DigitSet:
    """CIFAR-10 as 28×28 grayscale: luminance (ITU-R 601) then Lanczos (antialiased) resize.

    Reads torchvision's pickled CIFAR-10 when present, else ``ROOT/CIFAR10/<split>/<class>/*``.
    Labels are the CIFAR class indices (they are not digits).
    """
    r = data_root(root)
    folder = r / "CIFAR10" / split
    if folder.is_dir():
        paths, classes = list_image_folder(folder)
        names = sorted(set(classes))
        arr = np.stack(read_gray(paths, size=28))
        labels = np.array([names.index(c) for c in classes], dtype=np.int64)
        return DigitSet((arr * 255.0 + 0.5).astype(np.uint8), labels, f"cifar10-{split}")
    try:
        from PIL import Image
        from torchvision import datasets

        ds = datasets.CIFAR10(str(r), train=(split == "train"), download=False)
    except RuntimeError:
        raise UserError(
            f"CIFAR-10 not found under {r}: expected an image folder {folder}/<class>/*.jpg "
            "or torchvision's cifar-10-batches-py. Point `data_root=` or ROBUSTMNIST_DATA at it."
        ) from None
    gray = [
        np.asarray(Image.fromarray(a).convert("L").resize((28, 28), Image.Resampling.LANCZOS))
        for a in ds.data
    ]
    return DigitSet(np.stack(gray).astype(np.uint8), np.asarray(ds.targets, dtype=np.int64), f"cifar10-{split}")


def normalise_polarity(x: torch.Tensor, polarity: str = "auto") -> torch.Tensor:
    """Make digits white on black. 'auto' inverts an image whose border is brighter than mid-grey
    (paper is the background of a dark-on-light scan); 'dark-on-light' always inverts."""
    if polarity == "white-on-black":
        return x
    if polarity == "dark-on-light":
        return 1.0 - x
    if polarity != "auto":
        raise UserError(f"unknown polarity '{polarity}'; use auto, white-on-black or dark-on-light")
    border = torch.cat([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)
    invert = border.median(dim=1).values > 0.5
    return torch.where(invert.view(-1, 1, 1, 1), 1.0 - x, x)


def load_image_folder(folder: str | os.PathLike, polarity: str = "auto", frame: bool = True) -> DigitSet:
    """Images in class sub-folders (named 0-9 for digits; anything else gets label −1) or flat.

    Applies the MNIST framing of real digits (``photo.frame_real``): grayscale, polarity,
    ground to black, tight ink box to 20 px keeping aspect, centre of mass at the centre.
    """
    folder = Path(folder)
    paths, classes = list_image_folder(folder)
    grays = read_gray(paths)
    if frame:
        if polarity not in POLARITIES:
            normalise_polarity(torch.zeros(1, 1, 1, 1), polarity)  # raises the UserError
        x = frame_real(grays, polarity)
    else:
        x = torch.cat([torch.nn.functional.interpolate(normalise_polarity(torch.from_numpy(g)[None, None],
                                                                          polarity), size=(28, 28), mode="area")
                       for g in grays])
    labels = np.array([int(c) if c.isdigit() and len(c) == 1 else -1 for c in classes], dtype=np.int64)
    return DigitSet(to_uint8(x), labels, f"folder:{folder.name}")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float N×1×28×28 in [0,1] -> uint8 N×28×28 (round half up, the same on every machine)."""
    y = x.clamp(0, 1)  # the one copy; the rest in place (this runs on every generated set)
    return y.mul_(255.0).add_(0.5).floor_().to(torch.uint8)[:, 0].cpu().numpy()


def to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 -> float32 N×1×28×28 in [0, 1]."""
    t = torch.as_tensor(images)
    return t.unsqueeze(1).to(torch.float32).div_(255.0)


# -- training splits (train/loop.py's input) -------------------------------------------------------

from ..train.options import DATASETS  # noqa: E402 - torch-free, so CLI help can list them


@dataclass(frozen=True)
class TrainData:
    """Train and test images (uint8 N×C×H×W scaled per batch, or float already in [0, 1])."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    digits: bool = True  # white-on-black digits: polarity guard and digit shifts apply

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]


def _digit_set_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(ds.images).unsqueeze(1), torch.from_numpy(ds.labels).long()


def load_training_data(dataset: str, root: str | os.PathLike | None = None) -> TrainData:
    """Train + test split of a named dataset, as the model will see it."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset '{dataset}'. Known: {', '.join(DATASETS)}")
    if dataset in ("mnist", "fashion"):
        load = load_mnist if dataset == "mnist" else load_fashion
        xtr, ytr = _digit_set_tensors(load("train", root))
        xte, yte = _digit_set_tensors(load("test", root))
        classes = tuple(str(d) for d in range(10)) if dataset == "mnist" else FASHION_CLASSES
        return TrainData(dataset, xtr, ytr, xte, yte, classes, digits=(dataset == "mnist"))
    if dataset == "cifar10":
        _require_cifar_train(root)
        xtr, ytr = _digit_set_tensors(load_cifar10_gray(root, "train"))
        xte, yte = _digit_set_tensors(load_cifar10_gray(root, "test"))
        return TrainData(dataset, xtr, ytr, xte, yte, CIFAR10_CLASSES, digits=False)
    xtr, ytr = load_cifar10_rgb(root, "train")
    xte, yte = load_cifar10_rgb(root, "test")
    return TrainData(dataset, xtr, ytr, xte, yte, CIFAR10_CLASSES, digits=False)


FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle-boot")
# Sorted alphabetically, these are also CIFAR-10's class indices, so an image folder's sorted
# class names and torchvision's labels agree.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def _cifar_missing(root: Path, split: str) -> UserError:
    return UserError(
        f"CIFAR-10 {split} set not found under {root}: expected torchvision's "
        f"cifar-10-batches-py or an image folder {root}/CIFAR10/{split}/<class>/*.jpg "
        "(the offline mirror has only the test set). Point `data_root=` at a root that has it."
    )


def _torchvision_cifar(root: Path, split: str):
    from torchvision import datasets

    try:
        return datasets.CIFAR10(str(root), train=(split == "train"), download=False)
    except RuntimeError:
        return None


def _require_cifar_train(root: str | os.PathLike | None) -> None:
    # load_cifar10_gray's own message names only one split; training needs the train split.
    r = data_root(root)
    if not (r / "CIFAR10" / "train").is_dir() and _torchvision_cifar(r, "train") is None:
        raise _cifar_missing(r, "train")


def load_cifar10_rgb(root: str | os.PathLike | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as uint8 N×3×32×32: torchvision's pickled set when present, else an image folder."""
    r = data_root(root)
    ds = _torchvision_cifar(r, split)
    if ds is not None:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.as_tensor(ds.targets, dtype=torch.long)
    folder = r / "CIFAR10" / split
    if not folder.is_dir():
        raise _cifar_missing(r, split)
    return _read_rgb_folder(folder)


def _read_rgb_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    unknown = [c for c in classes if c not in CIFAR10_CLASSES]
    if not classes or unknown:
        raise UserError(
            f"{folder} must hold one sub-folder per CIFAR-10 class ({', '.join(CIFAR10_CLASSES)})"
            + (f"; found unexpected {', '.join(unknown)}" if unknown else "")
        )
    images, labels = [], []
    for cls in classes:
        for p in sorted((folder / cls).iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    if im.size != (32, 32):
                        im = im.resize((32, 32), Image.Resampling.LANCZOS)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"cannot read image {p}: {exc}") from None
            labels.append(CIFAR10_CLASSES.index(cls))
    if not images:
        raise UserError(f"no images found in {folder}/<class>/")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long)
