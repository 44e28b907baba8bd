"""Synthetic but plausible Results for report tests and the report benchmark.

Values follow the shape of a real run: accuracy falls with severity at a shift-specific
rate, some classes suffer more than others, a few shifts push one digit into another
(1→7 under euro_one, 6→0 under rotate), confidence falls slower than accuracy (so ECE
grows with severity), and galleries are real PNG strips of drawn digits that the
same family corruption was applied to. Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from robustmnist.results import (
    Environment,
    ModelInfo,
    OODRecord,
    Result,
    SetMetrics,
    ShiftRecord,
)

# MNIST test-set class counts, so per-class n look real.
CLASS_N = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SAMPLE_INDICES = [3, 2, 1, 18, 4, 8, 11, 0, 61, 7]
FPR95 = ("Hendrycks & Gimpel: MNIST test is the positive class; fraction of OOD images accepted "
         "at the threshold that accepts 95% of MNIST test images")

# (name, family, hardness in 0..1, generative?, preferred confusions true->pred)
FULL_SUITE: list[tuple[str, str, float, bool, dict[int, int]]] = [
    ("gaussian_noise", "noise", 0.35, False, {}),
    ("shot_noise", "noise", 0.30, False, {}),
    ("impulse_noise", "noise", 0.50, False, {}),
    ("speckle_noise", "noise", 0.25, False, {}),
    ("gaussian_blur", "blur", 0.30, False, {4: 9}),
    ("defocus_blur", "blur", 0.40, False, {4: 9}),
    ("motion_blur", "blur", 0.45, False, {}),
    ("glass_blur", "blur", 0.55, False, {}),
    ("zoom_blur", "blur", 0.35, False, {}),
    ("ink_smear", "smear", 0.45, False, {3: 8}),
    ("finger_smudge", "smear", 0.40, False, {}),
    ("pencil_smudge", "smear", 0.25, False, {}),
    ("scan_border", "border", 0.35, False, {1: 4}),
    ("frame_crop", "border", 0.50, False, {}),
    ("margin_shadow", "border", 0.20, False, {}),
    ("rotate", "geometric", 0.65, False, {6: 0, 9: 6}),
    ("shear", "geometric", 0.40, False, {}),
    ("scale", "geometric", 0.45, False, {}),
    ("translate", "geometric", 0.70, False, {}),
    ("elastic", "geometric", 0.35, False, {}),
    ("perspective", "geometric", 0.40, False, {}),
    ("brightness", "photometric", 0.20, False, {}),
    ("contrast", "photometric", 0.45, False, {}),
    ("inverse", "photometric", 0.95, False, {}),
    ("gamma", "photometric", 0.20, False, {}),
    ("fog", "photometric", 0.60, False, {}),
    ("jpeg", "digital", 0.15, False, {}),
    ("pixelate", "digital", 0.35, False, {}),
    ("quantize", "digital", 0.15, False, {}),
    ("stripe", "digital", 0.55, False, {}),
    ("dotted_line", "digital", 0.30, False, {}),
    ("zigzag", "digital", 0.40, False, {}),
    ("thin_stroke", "stroke", 0.40, False, {}),
    ("thick_stroke", "stroke", 0.35, False, {0: 8}),
    ("broken_stroke", "stroke", 0.45, False, {}),
    ("canny_edges", "stroke", 0.75, False, {}),
    ("fonts_serif", "fonts", 0.35, True, {1: 7}),
    ("fonts_sans", "fonts", 0.25, True, {}),
    ("fonts_hand", "fonts", 0.45, True, {}),
    ("euro_one", "euro", 0.55, True, {1: 7}),
    ("euro_seven", "euro", 0.35, True, {7: 2}),
    ("euro_four", "euro", 0.40, True, {4: 9}),
]

# Shapes that look alike get confused by default (row: true, values: likely predictions).
_LOOKALIKE = {0: [6, 8], 1: [7, 4], 2: [7, 3], 3: [5, 8], 4: [9, 1], 5: [3, 6],
              6: [0, 5], 7: [1, 2], 8: [3, 0], 9: [4, 7]}


def make_result(name: str = "lenet5", *, n_shifts: int | None = None, seed: int = 0,
                strength: float = 1.0, with_ood: bool = True, with_mce: bool = True,
                digits: np.ndarray | None = None, levels: int = 5) -> Result:
    """A plausible Result. ``n_shifts`` takes the first n of an interleaved suite (all families
    early), ``strength`` scales how much shifts hurt, ``digits`` (10×28×28 uint8, one per class)
    replaces the drawn digits with real ones."""
    rng = np.random.default_rng(seed)
    clean_digits = digits if digits is not None else draw_digits()
    suite = _interleaved(FULL_SUITE)[: n_shifts or len(FULL_SUITE)]
    clean_acc = np.clip(0.992 - 0.004 * rng.random(10), 0.95, 1.0)
    clean = _set_metrics(clean_acc, {}, conf_gap=0.002, rng=rng)
    clean.gallery = {"samples_png": _strip_png(clean_digits), "sample_indices": SAMPLE_INDICES,
                     "misclassified": _misclassified(clean_digits, clean, rng, 3)}

    shifts: list[ShiftRecord] = []
    for shift_name, family, hardness, generative, pairs in suite:
        class_weak = rng.uniform(0.6, 1.4, 10)
        for t in pairs:
            class_weak[t] *= 1.6
        for sev in range(1, levels + 1):
            drop = _drop(hardness * strength, sev, levels)
            acc_k = np.clip(clean_acc - drop * class_weak * rng.uniform(0.9, 1.1, 10), 0.02, 1.0)
            m = _set_metrics(acc_k, pairs, conf_gap=0.35 * drop + 0.01, rng=rng)
            imgs = corrupt(clean_digits, family, sev, levels, seed=hash_seed(shift_name, sev))
            rec = ShiftRecord(**vars(m), name=shift_name, family=family, severity=sev,
                              sha256=_sha(f"{shift_name}-{sev}-{seed}"),
                              params=_params(family, sev),
                              flip_rate=None if generative else float(min(1.0, drop * 1.05)))
            rec.gallery = {"samples_png": _strip_png(imgs), "sample_indices": SAMPLE_INDICES,
                           "misclassified": _misclassified(imgs, m, rng, 8)}
            shifts.append(rec)

    ood = _ood_records(rng, clean_digits) if with_ood else []
    return Result(
        model=ModelInfo(path=f"models/{name}.pt", sha256=_sha(f"model-{name}"), format="checkpoint",
                        preprocess="range=0-1;polarity=white-on-black;layout=1x28x28;output=logits",
                        name=name, arch=name, n_params=61706 if "lenet" in name else 178110),
        environment=Environment(python="3.12.3", torch="2.15.0", device="cpu",
                                torchvision="0.30.0", robustmnist="0.1.0",
                                platform="Linux-6.1-x86_64", threads=2),
        clean=clean,
        suite={"name": "default", "source": "shifts/default.toml", "levels": levels,
               "severities": list(range(1, levels + 1)), "n": 10000},
        seed=seed,
        shifts=shifts,
        ood=ood,
        summary=_summary(clean, shifts, ood, with_mce),
        timings={"load": 0.41, "generate": 38.2, "score": 9.7, "metrics": 3.1, "ood": 2.2},
        conventions={"accuracy_ci": "95% Wilson score interval",
                     "ece": "top-label, 15 equal-width bins, L1",
                     "fpr95": FPR95},
        created="2026-03-01T12:00:00Z",
    )


def hash_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big")


def _interleaved(suite):
    """Round-robin over families, so the first n shifts already cover every family."""
    by_family: dict[str, list] = {}
    for row in suite:
        by_family.setdefault(row[1], []).append(row)
    out = []
    while any(by_family.values()):
        for rows in by_family.values():
            if rows:
                out.append(rows.pop(0))
    return out


def _drop(hardness: float, sev: int, levels: int) -> float:
    # Logistic in severity: mild shifts barely move, hard ones fall off a cliff mid-ladder.
    x = sev / levels
    return float(0.9 * hardness / (1 + math.exp(-8 * (x * (0.4 + hardness) - 0.45))))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _params(family: str, sev: int) -> dict:
    return {"noise": {"sigma": round(0.08 * sev, 2)}, "blur": {"radius": round(0.4 * sev, 1)},
            "geometric": {"degrees": 8 * sev}, "photometric": {"factor": round(1 - 0.15 * sev, 2)},
            }.get(family, {"level": sev})


def _set_metrics(acc_k: np.ndarray, pairs: dict[int, int], conf_gap: float,
                 rng: np.random.Generator) -> SetMetrics:
    cm = np.zeros((10, 10), dtype=np.int64)
    for t in range(10):
        n = CLASS_N[t]
        correct = int(round(acc_k[t] * n))
        cm[t, t] = correct
        wrong = n - correct
        weights = np.full(10, 0.3)
        for p in _LOOKALIKE[t]:
            weights[p] = 2.0
        if t in pairs:
            weights[pairs[t]] = 12.0
        weights[t] = 0
        weights *= rng.uniform(0.5, 1.5, 10)
        cm[t] += rng.multinomial(wrong, weights / weights.sum())
    n = int(cm.sum())
    k = int(np.trace(cm))
    acc = k / n
    from robustmnist.metrics.classification import wilson_interval

    per_class = [float(cm[i, i] / cm[i].sum()) for i in range(10)]
    rel = _reliability(acc, conf_gap, n, rng)
    ece = sum(c / n * abs(a - m) for c, a, m in
              zip(rel["counts"], rel["accuracy"], rel["confidence"], strict=True) if c)
    mean_conf = sum(c * m for c, m in zip(rel["counts"], rel["confidence"], strict=True) if c) / n
    return SetMetrics(n=n, accuracy=acc, accuracy_ci=list(wilson_interval(k, n)), error=1 - acc,
                      per_class_accuracy=per_class, per_class_n=cm.sum(axis=1).tolist(),
                      confusion=cm.tolist(), ece=float(ece),
                      nll=float(-math.log(max(acc, 1e-3)) * 1.3 + 0.02),
                      brier=float(2 * (1 - acc) * 0.8 + 0.01), mean_confidence=float(mean_conf),
                      reliability=rel)


def _reliability(acc: float, gap: float, n: int, rng: np.random.Generator) -> dict:
    bins = 15
    centres = (np.arange(bins) + 0.5) / bins
    # Most mass near confidence 1 for a good model; spreads down as accuracy falls.
    target = min(0.999, acc + gap)
    w = np.exp(-((centres - target) ** 2) / (2 * (0.06 + 0.35 * (1 - target)) ** 2))
    w[centres < 0.1] = 0  # top-label confidence is never below 1/10
    counts = rng.multinomial(n, w / w.sum())
    accs, confs = [], []
    for c, m in zip(counts, centres, strict=True):
        if c == 0:
            accs.append(None)
            confs.append(None)
            continue
        conf = float(m + rng.uniform(-0.02, 0.02))
        accs.append(float(np.clip(conf - gap * rng.uniform(0.6, 1.4), 0, 1)))
        confs.append(conf)
    return {"bins": bins, "counts": counts.tolist(), "accuracy": accs, "confidence": confs}


def _ood_records(rng: np.random.Generator, digits: np.ndarray) -> list[OODRecord]:
    out = []
    for name, desc, auroc in (("fashion_mnist", "Fashion-MNIST test images", 0.93),
                              ("cifar10_gray", "CIFAR-10 test images, grey, 28×28", 0.97)):
        scores = {}
        for score, bump in (("msp", 0.0), ("max_logit", 0.012), ("energy", 0.018)):
            a = float(min(0.999, auroc + bump + rng.uniform(-0.01, 0.01)))
            scores[score] = {"auroc": a, "fpr95": float(min(1, (1 - a) * 3.2)),
                             "aupr_in": float(min(1, a + 0.01)), "aupr_out": float(a - 0.02)}
        edges = np.linspace(0, 1, 21).tolist()
        inn = (np.r_[np.zeros(15), [20, 40, 80, 300, 9560]]).astype(int).tolist()
        out_counts = rng.multinomial(10000, np.r_[np.zeros(2), np.linspace(1, 6, 18)] /
                                     np.linspace(1, 6, 18).sum()).tolist()
        hist = rng.multinomial(10000, rng.dirichlet(np.ones(10) * 0.7)).tolist()
        imgs = np.stack([_blob(rng) for _ in range(10)])
        out.append(OODRecord(
            name=name, n=10000, scores=scores, mean_confidence=0.81,
            frac_confidence_over_0_9=0.52, frac_confidence_over_0_99=0.21,
            predicted_histogram=hist, sha256=_sha(name), description=desc,
            convention=FPR95,
            msp_histogram={"edges": edges, "in": inn, "out": out_counts},
            gallery={"samples_png": _strip_png(imgs)}))
    return out


def _summary(clean, shifts, ood, with_mce) -> dict:
    accs = [s.accuracy for s in shifts]
    s: dict = {}
    if shifts:
        worst = min(shifts, key=lambda r: r.accuracy)
        fam: dict[str, list[float]] = {}
        for r in shifts:
            fam.setdefault(r.family, []).append(r.accuracy)
        s = {"mean_shifted_accuracy": float(np.mean(accs)),
             "worst_shift": {"name": worst.name, "severity": worst.severity,
                             "accuracy": worst.accuracy},
             "per_family": {f: float(np.mean(v)) for f, v in fam.items()}}
        if with_mce:
            s["mce"] = float(np.mean([1 - a for a in accs]) / 0.18)
            s["relative_mce"] = float((np.mean([1 - a for a in accs]) - clean.error) / 0.15)
            s["reference"] = {"name": "lenet5-reference", "sha256": _sha("reference")}
    if ood:
        s["ood_mean_auroc"] = float(np.mean([o.scores["msp"]["auroc"] for o in ood]))
    return s


# ---- images ---------------------------------------------------------------------------------

def draw_digits() -> np.ndarray:
    """Ten 28×28 white-on-black digits drawn with Pillow's bundled font, blurred like MNIST."""
    font = ImageFont.load_default(size=22)
    out = []
    for k in range(10):
        im = Image.new("L", (28, 28), 0)
        d = ImageDraw.Draw(im)
        box = d.textbbox((0, 0), str(k), font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        d.text(((28 - w) / 2 - box[0], (28 - h) / 2 - box[1]), str(k), fill=255, font=font,
               stroke_width=1, stroke_fill=255)
        out.append(np.asarray(im.filter(ImageFilter.GaussianBlur(0.6))))
    return np.stack(out)


def corrupt(digits: np.ndarray, family: str, sev: int, levels: int = 5, seed: int = 0) -> np.ndarray:
    """A look-alike of each family's corruption, enough for galleries to look real."""
    rng = np.random.default_rng(seed)
    t = sev / levels
    out = []
    for k, d in enumerate(digits):
        im = Image.fromarray(d)
        x = np.asarray(im, dtype=np.float32) / 255
        if family == "noise":
            x = x + rng.normal(0, 0.5 * t, x.shape)
        elif family == "blur":
            x = np.asarray(im.filter(ImageFilter.GaussianBlur(2.2 * t)), np.float32) / 255
        elif family == "smear":
            x = np.maximum(x, np.roll(x, int(1 + 4 * t), axis=1) * 0.7)
        elif family == "border":
            b = int(1 + 4 * t)
            x = x.copy()
            x[:b, :] = x[-b:, :] = 0.8
        elif family == "geometric":
            x = np.asarray(im.rotate(60 * t * (1 if k % 2 else -1), resample=Image.BILINEAR),
                           np.float32) / 255
        elif family == "photometric":
            x = x * (1 - 0.7 * t) + 0.5 * t
        elif family == "digital":
            s = max(4, int(28 * (1 - 0.75 * t)))
            x = np.asarray(im.resize((s, s), Image.BILINEAR).resize((28, 28), Image.NEAREST),
                           np.float32) / 255
        elif family == "stroke":
            size = 3 if t < 0.7 else 5
            x = np.asarray(im.filter(ImageFilter.MaxFilter(size)), np.float32) / 255
        elif family == "fonts":
            x = np.roll(x, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
        elif family == "euro":
            x = x.copy()
            if k in (1, 7):
                x[12:15, 8:20] = np.maximum(x[12:15, 8:20], t)
            if k == 1:
                x[5:8, 9:15] = np.maximum(x[5:8, 9:15], t)
        out.append(np.clip(x * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def _blob(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:28, 0:28]
    cy, cx = rng.uniform(8, 20, 2)
    r = rng.uniform(5, 11)
    x = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))) * rng.uniform(0.4, 1)
    x = x + rng.uniform(0, 0.3, (28, 28)) * (xx % 4 < 2)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _strip_png(imgs: np.ndarray) -> str:
    return png_b64(np.concatenate(list(imgs), axis=1))


def _misclassified(imgs: np.ndarray, m: SetMetrics, rng: np.random.Generator, k: int) -> list[dict]:
    cm = np.asarray(m.confusion)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    if off.sum() == 0:
        return []
    flat = rng.choice(100, size=k, p=(off / off.sum()).ravel())
    out = []
    for i, f in enumerate(sorted(flat)):
        t, p = divmod(int(f), 10)
        out.append({"index": int(1000 * t + i), "true": t, "pred": p,
                    "confidence": float(rng.uniform(0.45, 0.999)), "png": png_b64(imgs[t])})
    return out
