"""Real digit sets: handwriting, scans and photos that nobody generated, put through the same
MNIST framing (``photo.frame_real``) so a model sees them the way it saw MNIST.

Sources: ``usps``, ``svhn`` (test split), ``emnist`` (digits test split), ``qmnist``
(test50k, the control: MNIST's own distribution) through torchvision, downloaded when there is
internet and read from the data root otherwise; ``digits`` (scikit-learn's bundled 8×8
handwritten digits, no download); ``folder:PATH`` (class sub-folders 0-9 of any images) and
``npz:PATH`` (arrays ``x`` N×H×W uint8 and ``y``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .datasets import data_root, to_uint8

GALLERY_PER_CLASS = 1  # framing gallery: the first image of each digit, before and after


@dataclass(frozen=True)
class RealSet:
    name: str
    description: str
    images: np.ndarray  # framed uint8 N×28×28, white on black
    labels: np.ndarray  # int64 N, digits 0-9
    before: list[np.ndarray]  # the raw images shown in the framing gallery (float [0, 1], any size)
    before_indices: list[int]
    doubtful: list[tuple[str, ...]] | None = None  # per image: why its framing is doubtful
    doubtful_before: list[np.ndarray] | None = None  # the raw images of doubtful_indices(doubtful)


@dataclass(frozen=True)
class RealSource:
    name: str
    description: str
    expected: str  # the files it reads, relative to the data root ("" when it needs none)
    load: Callable[[Path], tuple[list | np.ndarray, np.ndarray]]  # -> raw images, labels


# -- torchvision sources -------------------------------------------------------------------------

def _torchvision(name: str, root: Path, make: Callable[[bool], object]):
    """make(download) -> dataset; offline or failing, one line naming the files to put there."""
    try:
        return make(False)
    except (RuntimeError, FileNotFoundError, OSError):
        pass  # not there: try to download below
    src = SOURCES[name]
    message = (f"real set '{name}' not found under {root} and it could not be downloaded. Expected "
               f"{root / src.expected}. Put the file(s) there or point `data_root=` or "
               "ROBUSTMNIST_DATA at a folder with that layout.")
    if os.environ.get("ROBUSTMNIST_OFFLINE"):
        raise UserError(message)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # an offline machine fails fast instead of hanging
    try:
        return make(True)
    except Exception:  # noqa: BLE001 - any download failure means the same thing to the user
        raise UserError(message) from None
    finally:
        socket.setdefaulttimeout(old)


def _usps(root: Path):
    from torchvision import datasets

    ds = _torchvision("usps", root, lambda dl: datasets.USPS(str(root / "USPS"), train=False, download=dl))
    return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)


def _svhn(root: Path):
    from torchvision import datasets

    ds = _torchvision("svhn", root, lambda dl: datasets.SVHN(str(root / "SVHN"), split="test", download=dl))
    # torchvision keeps SVHN as N×3×32×32; frame_real takes channels last and makes it grey
    return np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1)), np.asarray(ds.labels, dtype=np.int64)


def _emnist(root: Path):
    from torchvision import datasets

    ds = _torchvision("emnist", root, lambda dl: datasets.EMNIST(str(root), split="digits", train=False,
                                                                download=dl))
    # EMNIST's idx files store each image transposed (NIST's column order): flip it back
    return ds.data.numpy().transpose(0, 2, 1).copy(), ds.targets.numpy().astype(np.int64)


def _qmnist(root: Path):
    from torchvision import datasets

    ds = _torchvision("qmnist", root, lambda dl: datasets.QMNIST(str(root), what="test50k", compat=True,
                                                                download=dl))
    return ds.data.numpy(), ds.targets[:, 0].numpy().astype(np.int64)  # column 0: the digit


def _digits(root: Path):
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)  # 17 grey levels, 0..16


SOURCES: dict[str, RealSource] = {
    "usps": RealSource("usps", "USPS test set: 2,007 handwritten zip-code digits scanned by the US "
                       "Postal Service, 16×16", "USPS/usps.t.bz2", _usps),
    "svhn": RealSource("svhn", "SVHN test set: 26,032 house-number photos from Street View, 32×32 "
                       "colour, converted to grey (neighbouring digits stay in the crop)",
                       "SVHN/test_32x32.mat", _svhn),
    "emnist": RealSource("emnist", "EMNIST digits test set: 40,000 NIST handwritten digits from other "
                         "writers than MNIST's", "EMNIST/raw/emnist-digits-test-images-idx3-ubyte and "
                         "emnist-digits-test-labels-idx1-ubyte", _emnist),
    "qmnist": RealSource("qmnist", "QMNIST test50k: the 50,000 MNIST test digits that MNIST dropped, "
                         "reconstructed from NIST (a control: the same distribution as MNIST)",
                         "QMNIST/raw/qmnist-test-images-idx3-ubyte and qmnist-test-labels-idx2-int",
                         _qmnist),
    "digits": RealSource("digits", "scikit-learn's handwritten digits: 1,797 8×8 images from 43 "
                         "writers (UCI optdigits), bundled, no download", "", _digits),
}
PREFIXES = ("folder:", "npz:")


# -- the user's own digits -----------------------------------------------------------------------

def _folder(path: Path):
    from .datasets import list_image_folder, read_gray

    paths, classes = list_image_folder(path)
    digits = [c for c in classes if len(c) == 1 and c.isdigit()]
    if len(digits) != len(classes):
        bad = sorted({c or "(top level)" for c in classes} - set(digits))
        raise UserError(f"real folder {path}: put images in sub-folders named 0-9 by their digit; "
                        f"found images in {', '.join(bad[:5])}")
    return read_gray(paths), np.array([int(c) for c in classes], dtype=np.int64)


def _npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:  # never unpickle a user's file
            if "x" not in z.files or "y" not in z.files:
                raise UserError(f"{path} needs arrays 'x' (N×H×W uint8) and 'y' (N digit labels); "
                                f"it has {', '.join(z.files) or 'none'}")
            x, y = z["x"], z["y"]
    except FileNotFoundError:
        raise UserError(f"real set file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as .npz without pickles: {str(exc).splitlines()[0]}") from None
    if x.dtype != np.uint8 or x.ndim != 3 or len(x) == 0:
        raise UserError(f"{path}: 'x' must be a non-empty N×H×W uint8 array, got {x.dtype} {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise UserError(f"{path}: 'y' must hold {len(x)} integer digits 0-9, got {y.dtype} {y.shape}")
    return x, y.astype(np.int64)


# -- names and loading ---------------------------------------------------------------------------

def check_real_names(names: list[str]) -> None:
    """Fail before any work on a name that cannot be a real set."""
    for name in names:
        if name.startswith("folder:"):
            p = Path(name[len("folder:"):]).expanduser()
            if not p.is_dir():
                raise UserError(f"real folder {p} does not exist or is not a folder")
        elif name.startswith("npz:"):
            p = Path(name[len("npz:"):]).expanduser()
            if not p.is_file():
                raise UserError(f"real set file {p} does not exist")
        elif name not in SOURCES:
            raise UserError(f"unknown real set '{name}'. Known: {', '.join(SOURCES)}, folder:PATH, npz:PATH")


def _raw(name: str, root: Path) -> tuple[list | np.ndarray, np.ndarray, str]:
    if name.startswith("folder:"):
        p = Path(name[len("folder:"):]).expanduser()
        return *_folder(p), f"your images in {p.name}/0-9 (any size and format)"
    if name.startswith("npz:"):
        p = Path(name[len("npz:"):]).expanduser()
        return *_npz(p), f"arrays x, y from {p.name}"
    src = SOURCES[name]
    return *src.load(root), src.description


DOUBTFUL_SHOWN = 8  # doubtful framings shown in the report, the first ones in the set


def doubtful_indices(doubtful: list[tuple[str, ...]] | None) -> list[int]:
    return [i for i, why in enumerate(doubtful or []) if why][:DOUBTFUL_SHOWN]


def gallery_indices(labels: np.ndarray) -> list[int]:
    idx = []
    for k in range(10):
        hits = np.flatnonzero(labels == k)[:GALLERY_PER_CLASS]
        idx.extend(int(i) for i in hits)
    return idx


def load_real(name: str, root: str | os.PathLike | None = None, n: int | None = None,
              polarity: str = "auto") -> RealSet:
    """Read a real set and frame it like MNIST; ``n`` keeps the first n images.

    Each image is framed on its own (``frame_real``), so the first n framed are the same bytes
    as the first n of the whole set framed.
    """
    from .photo import frame_real_report

    check_real_names([name])
    raw, labels, description = _raw(name, data_root(root))
    if n is not None:
        raw, labels = raw[:n], labels[:n]
    if len(labels) == 0:
        raise UserError(f"real set '{name}' has no images")
    framed, doubtful = frame_real_report(raw, polarity)
    images = to_uint8(framed)
    idx = gallery_indices(labels)
    scale = 255.0 if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 else 1.0
    before = [np.asarray(raw[i], dtype=np.float32) / scale for i in idx]
    doubt_before = [np.asarray(raw[i], dtype=np.float32) / scale for i in doubtful_indices(doubtful)]
    return RealSet(name, description, images, labels, before, idx, doubtful, doubt_before)


def real_from_arrays(name: str, raw: np.ndarray | list, labels: np.ndarray, description: str = "",
                     polarity: str = "auto") -> RealSet:
    """A real set from images in memory (what ``npz:`` reads), for the Python API and tests."""
    from .photo import frame_real_report

    labels = np.asarray(labels, dtype=np.int64)
    framed, doubtful = frame_real_report(raw, polarity)
    images = to_uint8(framed)
    idx = gallery_indices(labels)
    scale = 255.0 if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 else 1.0
    return RealSet(name, description or name, images, labels,
                   [np.asarray(raw[i], dtype=np.float32) / scale for i in idx], idx, doubtful,
                   [np.asarray(raw[i], dtype=np.float32) / scale for i in doubtful_indices(doubtful)])


def thumbnail(img: np.ndarray, size: int = 28) -> np.ndarray:
    """A raw image as the framing gallery's "before": grey, as it came (polarity kept), fitted
    into size×size keeping aspect, on its own ground tone."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    u8 = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    border = np.concatenate([u8[0], u8[-1], u8[:, 0], u8[:, -1]])
    im = Image.fromarray(u8)
    if max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    scale = size / max(im.size)
    if scale > 1:  # small sources (8×8, 16×16) are shown enlarged, blocky as they are
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.NEAREST)
    canvas = Image.new("L", (size, size), int(np.median(border)))
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return np.asarray(canvas)
