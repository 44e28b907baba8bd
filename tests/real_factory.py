"""Tiny real-digit data for tests: printed digits rendered with the pinned fonts, and the
torchvision file layouts of USPS, SVHN, EMNIST and QMNIST written into a temp data root."""

from __future__ import annotations

import bz2
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = Path(__file__).resolve().parents[1] / "fonts"
# Pinned faces (subset to the digits); Arimo, Tinos and Cousine are the Liberation designs.
PRINT_FACES = ("Arimo-Regular-digits.ttf", "Tinos-Regular-digits.ttf", "Cousine-Bold-digits.ttf",
               "Roboto-Regular-digits.ttf")


def printed_digits(per_class: int = 4, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Dark-on-light printed digits (uint8, grey paper, dark ink) on canvases of various sizes."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(10):
        for j in range(per_class):
            size = int(rng.integers(24, 90))  # font size in px
            w, h = int(size * rng.uniform(0.9, 1.6)), int(size * rng.uniform(1.2, 1.8))
            font = ImageFont.truetype(str(FONTS / PRINT_FACES[j % len(PRINT_FACES)]), size)
            im = Image.new("L", (w, h), int(rng.integers(200, 250)))
            ImageDraw.Draw(im).text((w / 2, h / 2), str(k), fill=int(rng.integers(0, 60)), font=font,
                                    anchor="mm")
            images.append(np.asarray(im))
            labels.append(k)
    return images, np.array(labels, dtype=np.int64)


def write_folder(root: Path, images: list[np.ndarray], labels: np.ndarray) -> Path:
    """Class sub-folders 0-9 of PNGs, named so that sorted order is the list order."""
    for i, (img, k) in enumerate(zip(images, labels, strict=True)):
        d = root / str(int(k))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"img{i:04d}.png")
    return root


def blocky_digits(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×size×size light-on-dark blobs whose place depends on the class (a stand-in)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    x = np.zeros((n, size, size), np.uint8)
    for i, k in enumerate(labels):
        r = 1 + (k * (size - 4)) // 10
        x[i, r : r + 3, size // 4 : 3 * size // 4] = 200 + rng.integers(0, 55)
    return x, labels.astype(np.int64)


def _idx(path: Path, arr: np.ndarray, type_code: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", (type_code << 8) | arr.ndim))
        f.write(struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.astype(">i4" if type_code == 12 else np.uint8).tobytes())


def write_usps(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """USPS/usps.t.bz2 in libsvm format: 'label i:v ...', label 1-10, pixels in [-1, 1]."""
    lines = []
    for img, k in zip(x, y, strict=True):
        vals = img.reshape(-1).astype(np.float64) / 255 * 2 - 1
        lines.append(f"{k + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(vals)))
    (root / "USPS").mkdir(parents=True, exist_ok=True)
    with bz2.open(root / "USPS" / "usps.t.bz2", "wt") as f:
        f.write("\n".join(lines) + "\n")


def write_svhn(root: Path, x_rgb: np.ndarray, y: np.ndarray) -> None:
    """SVHN/test_32x32.mat: X is 32×32×3×N uint8, y is N×1 with 10 for the digit 0."""
    import scipy.io

    (root / "SVHN").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "SVHN" / "test_32x32.mat",
                     {"X": np.ascontiguousarray(x_rgb.transpose(1, 2, 3, 0)),
                      "y": np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)})


def write_emnist(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """EMNIST/raw/emnist-digits-test-*: images stored transposed, as NIST's files are."""
    raw = root / "EMNIST" / "raw"
    _idx(raw / "emnist-digits-test-images-idx3-ubyte", x.transpose(0, 2, 1), 8)
    _idx(raw / "emnist-digits-test-labels-idx1-ubyte", y.astype(np.uint8), 8)


def write_qmnist(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    """QMNIST/raw/qmnist-test-*: labels are N×8 int32 (column 0 the digit); test50k = [10000:]."""
    raw = root / "QMNIST" / "raw"
    _idx(raw / "qmnist-test-images-idx3-ubyte", x, 8)
    extra = np.zeros((len(y), 8), np.int64)
    extra[:, 0] = y
    extra[:, 5] = np.arange(len(y))  # the NIST index column, anything
    _idx(raw / "qmnist-test-labels-idx2-int", extra, 12)
