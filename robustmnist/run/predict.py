"""``predict``: one model on a few of the user's own images (phone photos, scans), each read,
photo-framed (``data.photo``) and scored on its own. A bad image (not an image, empty, too
small, enormous) gets its reason and the others carry on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_SIDE = 8  # a digit needs a few pixels each way; a 1×1 "image" is an error, not a digit
MAX_PIXELS = 64_000_000  # a 64-megapixel phone photo is the largest we decode (a bomb is refused)
THUMB = 192  # the page's copy of the photo, longer side in px


@dataclass
class Prediction:
    """What the model says about one image; ``error`` set (and the rest empty) when it could not be read."""

    path: str
    prediction: int | None = None
    probabilities: list[float] = field(default_factory=list)  # 10, softmax of the logits
    top3: list[tuple[int, float]] = field(default_factory=list)
    doubtful: list[str] = field(default_factory=list)  # why the framing looks doubtful
    error: str | None = None
    framed: np.ndarray | None = field(default=None, repr=False)  # uint8 28×28, as the model saw it
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # uint8 H×W(×3), the photo

    def to_dict(self) -> dict:
        return {"path": self.path, "prediction": self.prediction,
                "probabilities": [round(p, 6) for p in self.probabilities],
                "top3": [{"digit": d, "probability": round(p, 6)} for d, p in self.top3],
                "doubtful": bool(self.doubtful), "doubt_reasons": list(self.doubtful), "error": self.error}


def read_photo(source) -> tuple[np.ndarray, np.ndarray]:
    """(grey float32 H×W in [0, 1], a small RGB copy for the page) of a path or an array;
    ValueError with a one-line reason when it is not a usable image."""
    if isinstance(source, np.ndarray):
        a = source.astype(np.float32) / (255.0 if source.dtype == np.uint8 else 1.0)
        if a.ndim == 3 and a.shape[-1] in (3, 4):
            a = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if a.ndim != 2:
            raise ValueError(f"expected an H×W or H×W×3 image array, got shape {source.shape}")
        _check_size(a.shape[1], a.shape[0])
        u8 = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
        return a.clip(0, 1), _thumb_array(u8)
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(source)
    if not p.is_file():
        raise ValueError("no such file")
    if p.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(p) as im:
            _check_size(*im.size)
            _draft(im)
            im = ImageOps.exif_transpose(im)  # phones store the rotation in EXIF, not in the pixels
            grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            thumb = im.convert("RGB")
            thumb.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
            return grey, np.asarray(thumb)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ValueError("not an image PIL can read") from None
    except OSError as exc:
        raise ValueError(f"cannot read it ({str(exc).splitlines()[0]})") from None


def _check_size(w: int, h: int) -> None:
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"too small ({w}×{h} px): a digit needs at least {MIN_SIDE} px each way")
    if w * h > MAX_PIXELS:
        raise ValueError(f"too large ({w}×{h} px, over {MAX_PIXELS // 1_000_000} megapixels): "
                         "crop or shrink it first")


def _draft(im) -> None:
    """Let a large JPEG decode at 1/2, 1/4 or 1/8 scale (its DCT blocks averaged, a fraction of
    the full decode's time), still at least PRE_SIDE px long: the framing would shrink it that far
    anyway (``data.photo.PRE_SIDE``). A no-op for other formats and smaller photos."""
    from ..data.photo import PRE_SIDE

    long = max(im.size)
    if long >= 2 * PRE_SIDE:
        im.draft(None, (-(-im.width * PRE_SIDE // long), -(-im.height * PRE_SIDE // long)))


def _thumb_array(u8: np.ndarray) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(u8)
    im.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return np.asarray(im)


def predict_images(model, images, polarity: str = "auto") -> list[Prediction]:
    """Read, photo-frame and score each of ``images`` (paths or arrays) with a loaded model."""
    from ..data.datasets import to_uint8
    from ..data.photo import frame_real_report
    from ..metrics.classification import softmax
    from .scoring import score

    preds, grey, where = [], [], []
    for i, src in enumerate(images):
        name = str(src) if isinstance(src, str | os.PathLike) else f"array {i}"
        try:
            g, thumb = read_photo(src)
        except ValueError as exc:
            preds.append(Prediction(name, error=str(exc)))
            continue
        preds.append(Prediction(name, thumbnail=thumb))
        grey.append(g)
        where.append(len(preds) - 1)
    if not grey:
        return preds
    framed, doubts = frame_real_report(grey, polarity)
    u8 = to_uint8(framed)
    probs = softmax(score(model, u8))
    for j, i in enumerate(where):
        p = preds[i]
        order = np.argsort(-probs[j], kind="stable")
        p.prediction = int(order[0])
        p.probabilities = [float(v) for v in probs[j]]
        p.top3 = [(int(d), float(probs[j, d])) for d in order[:3]]
        p.doubtful = list(doubts[j])
        p.framed = u8[j]
    return preds
