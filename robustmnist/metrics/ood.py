"""Out-of-distribution detection metrics: how well a model's own scores (max softmax, max
logit, energy) tell MNIST test digits from an OOD set (Hendrycks & Gimpel 2017; OpenOOD)."""

from __future__ import annotations

import numpy as np

from ..report.images import png_b64
from ..results import OODRecord
from ..shifts.sets import set_sha256

OOD_SCORES = ("msp", "max_logit", "energy")


def ood_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image confidence scores (higher = more in-distribution)."""
    z = logits.astype(np.float64)
    zmax = z.max(axis=1)
    lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
    return {
        "msp": np.exp(zmax - lse),  # max softmax probability
        "max_logit": zmax,
        "energy": lse,  # negative free energy −E(x) = T·logsumexp(z/T) with T = 1
    }


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = 0.95) -> float:
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.ones(len(in_scores)), np.zeros(len(out_scores))])
    s = np.concatenate([in_scores, out_scores])
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr_curve, tpr, side="left")])


def ood_detection_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_in = np.concatenate([np.ones(len(in_scores)), np.zeros(len(out_scores))])
    s = np.concatenate([in_scores, out_scores])
    return {
        "auroc": float(roc_auc_score(y_in, s)),
        "fpr95": fpr_at_tpr(in_scores, out_scores, 0.95),
        "aupr_in": float(average_precision_score(y_in, s)),
        "aupr_out": float(average_precision_score(1 - y_in, -s)),
    }


CONVENTION = ("ID (MNIST test) is the positive class; scores are higher-is-in-distribution; "
              "fpr95 = fraction of OOD images accepted at the threshold accepting 95% of MNIST "
              "test (Hendrycks & Gimpel 2017; OpenOOD's fpr95 uses OOD as positive instead)")


HIST_EDGES = np.linspace(0.0, 1.0, 21)


# Max-logit and energy read the scale of unnormalised logits. A model that outputs
# probabilities or log-probabilities has none: its "logits" are log p, whose max is log(msp)
# and whose logsumexp is 0 for every image, so both scores would be noise dressed as numbers.
LOGIT_ONLY = ("max_logit", "energy")


def unavailable_scores(output: str) -> dict[str, dict]:
    """The score records marked "not available" for a model whose output kind is ``output``."""
    if output == "logits":
        return {}
    reason = (f"not available: the model outputs {output}, not logits; max-logit and energy are "
              "defined on unnormalised logits only (for such a model they are functions of "
              "max-softmax or constant)")
    return {k: {"auroc": None, "fpr95": None, "aupr_in": None, "aupr_out": None, "available": False,
                "reason": reason} for k in LOGIT_ONLY}


def ood_record(name: str, description: str, images: np.ndarray, in_logits: np.ndarray,
               out_logits: np.ndarray, output: str = "logits") -> OODRecord:
    s_in, s_out = ood_scores(in_logits), ood_scores(out_logits)
    missing = unavailable_scores(output)
    msp_out = s_out["msp"]
    preds = out_logits.argmax(axis=1)
    return OODRecord(
        name=name,
        n=int(len(out_logits)),
        scores={k: missing.get(k) or ood_detection_metrics(s_in[k], s_out[k]) for k in OOD_SCORES},
        mean_confidence=float(msp_out.mean()),
        frac_confidence_over_0_9=float((msp_out > 0.9).mean()),
        frac_confidence_over_0_99=float((msp_out > 0.99).mean()),
        predicted_histogram=np.bincount(preds, minlength=10).tolist(),
        sha256=set_sha256(images, np.full(len(images), -1, np.int64)),
        description=description,
        convention=CONVENTION,
        msp_histogram={"edges": HIST_EDGES.tolist(),
                       "in": np.histogram(s_in["msp"], HIST_EDGES)[0].tolist(),
                       "out": np.histogram(msp_out, HIST_EDGES)[0].tolist()},
        gallery={"samples_png": png_b64(np.concatenate(list(images[:10]), axis=1))},
    )
