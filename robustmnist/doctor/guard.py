"""The convention guard ``eval`` and ``bench`` run before scoring anything.

A model fed the wrong input convention still produces numbers, and they look plausible: the
PyTorch example CNN (trained with ``Normalize((0.1307,), (0.3081,))``) scores ~92% on clean
MNIST fed 0-1 pixels instead of ~98%, and its shifted accuracies and mCE are off by far more.
So before a long evaluation the doctor's grid is scored on its fixed 1,000-image sample and:

- **stop** (exit 2, one line naming the ``--preprocess`` to pass, and ``--preprocess auto``,
  which applies it) when another input convention beats the declared one by a paired-test-clear
  margin (exact McNemar on the same images, p < 0.001) of at least 1 point; or when it is at
  least as accurate and its likelihood is decisively better: mean NLL at least 3x lower, by at
  least 0.1 nats, with a paired sign test on the per-image likelihoods at p < 0.001 (a
  Normalize-trained CNN fed 0-1 pixels: 97.6% vs 98.4% on clean, NLL 0.44 vs 0.04, yet contrast
  s3 at 54% vs 97%: its shifted numbers are wrong, not its clean ones); or when the outputs are
  (log-)probabilities while declared as logits (energy and max-logit would be computed from the
  wrong quantity);
- **warn** (terminal and report) when the gap is significant but smaller, or when accuracy
  ties but another scale gives far better confidences (the doctor's "confidences only" case,
  typical of Normalize-trained ReLU nets, whose shifted accuracies still move a lot).

An explicit ``--preprocess`` means the user has decided: the guard is skipped. ``--preprocess
auto`` runs it and applies whatever it names (``apply``): a model whose declared convention is
already the best is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from .diagnosis import diagnose
from .findings import HEALTHY_BAR
from .measure import distance, load_sample

P_VALUE = 1e-3  # paired exact McNemar on the same 1,000 images: "clearly better", not noise
MIN_GAP = 0.01  # and at least one point of clean accuracy before eval refuses to run
WORKING = 0.5  # a "fix" that leaves the model below this is noise in a broken model, not a fix
# The likelihood stop: a convention the model was trained on lowers the NLL of nearly every image;
# a rescaled ReLU net's sharper or flatter softmax moves it by far less than 3x, and 0.1 nats
# keeps near-perfect models (NLL 0.01 vs 0.003) from stopping on noise-sized gaps.
NLL_RATIO = 3.0
NLL_GAP = 0.1
AUTO = "auto"  # preprocess="auto": apply the convention the guard detects


@dataclass
class ConventionCheck:
    status: str  # ok | warn | stop
    declared: str  # the convention the model declared (stored, or the default)
    fix: str | None = None  # the --preprocess value to pass, when one is better
    declared_accuracy: float | None = None
    fix_accuracy: float | None = None
    p_value: float | None = None
    output_kind: str = "logits"  # as detected from the outputs
    reason: str = ""  # one sentence; the message shown to the user builds on it
    data: dict[str, Any] = field(default_factory=dict)
    applied: bool = False  # preprocess="auto" put ``fix`` in place of the declared convention

    def message(self, model_path: str, marked: bool = False) -> str:
        """The verdict in words; ``marked``: the fix as parameter marks (errors.py), which the CLI
        shows as flags and Python as arguments; else as flags (the report's wording)."""
        name = Path(model_path).name
        if self.status == "ok":
            return ""
        fix = f'`preprocess="{self.fix}"`' if marked else f"--preprocess {self.fix}"
        auto = f'`preprocess="{AUTO}"`' if marked else f"--preprocess {AUTO}"
        advice = f"{name}: {self.reason}; " + (f"pass {auto} to apply it, or spell it out: {fix}"
                                               if self.fix else "check the model's convention")
        if self.status == "stop":
            return f"{advice} (or {_force_word(marked)} to evaluate as declared)"
        return advice

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConventionCheck:
        data = {"likelihood": d["likelihood"]} if "likelihood" in d else {}
        return cls(**{k: d.get(k) for k in ("status", "declared", "fix", "declared_accuracy", "fix_accuracy",
                                            "p_value", "reason")},
                   output_kind=d.get("output_kind", "logits"), applied=bool(d.get("applied")), data=data)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "declared": self.declared, "fix": self.fix,
                "declared_accuracy": self.declared_accuracy, "fix_accuracy": self.fix_accuracy,
                "p_value": self.p_value, "output_kind": self.output_kind, "reason": self.reason,
                "applied": self.applied,
                **({"likelihood": self.data["likelihood"]} if "likelihood" in self.data else {})}


def _force_word(marked: bool) -> str:
    return "`force=True`" if marked else "--force"


def _paired(a, b) -> tuple[int, int, float]:
    """Discordant counts (a right & b wrong, a wrong & b right) and the exact McNemar p."""
    from ..metrics.paired import mcnemar_exact

    wins = int((a & ~b).sum())
    losses = int((~a & b).sum())
    return wins, losses, mcnemar_exact(wins, losses)


def _likelihood(best, as_declared) -> dict | None:
    """The paired likelihood test: per-image NLL, best vs declared (sign test on who is lower)."""
    if best.nll_each is None or as_declared.nll_each is None:
        return None
    from ..metrics.paired import mcnemar_exact

    lower = int((best.nll_each < as_declared.nll_each).sum())
    higher = int((best.nll_each > as_declared.nll_each).sum())
    return {"nll_declared": round(as_declared.nll, 4), "nll_fix": round(best.nll, 4), "lower": lower,
            "higher": higher, "p_value": mcnemar_exact(lower, higher)}


def _decisive(lik: dict | None, best, as_declared) -> bool:
    return (lik is not None and best.accuracy >= as_declared.accuracy and lik["lower"] > lik["higher"]
            and as_declared.nll >= NLL_RATIO * best.nll and as_declared.nll - best.nll >= NLL_GAP
            and lik["p_value"] < P_VALUE)


def check_convention(model, data_root=None, sample=None) -> ConventionCheck:
    """Score the doctor's convention grid on its fixed sample and judge the declared one."""
    sample = sample if sample is not None else load_sample(data_root)
    # A model that already works as declared can only have its scale wrong (a flipped polarity
    # or transposition does not leave 90% standing): score the input ranges alone, a quarter
    # of the doctor's grid, and the whole grid only for a model that fails as declared.
    d = diagnose(model, sample=sample, check_dead_units=False, ranges_only=True)
    if d.declared.accuracy < HEALTHY_BAR:
        d = diagnose(model, sample=sample, check_dead_units=False)
    declared = model.preprocess
    kind = d.output_kind
    n = d.n_images
    base = ConventionCheck("ok", declared.to_string(), output_kind=kind,
                           declared_accuracy=d.declared.accuracy)
    if d.finding("chance-level") or d.finding("permuted-labels") or d.finding("non-finite-outputs"):
        return base  # no convention fixes these; the run itself (and doctor) report them
    reading = kind if kind in ("logits", "log-probs", "probs") else declared.output
    pool = [s for s in d.conventions if s.error is None and s.correct is not None
            and s.preprocess.output == reading]
    as_declared = next((s for s in pool if s.spec == replace(declared, output=reading).to_string()), None)
    best = d.best
    if as_declared is not None and best.spec == as_declared.spec:
        # The doctor keeps the declared convention unless another is 2 points better; the
        # guard also wants to hear about a 1-point gap, if the paired test is clear about it.
        better = [s for s in pool if s.nll <= as_declared.nll and s.accuracy > as_declared.accuracy]
        if better:
            best = max(better, key=lambda s: (s.accuracy, -distance(s.preprocess, as_declared.preprocess)))
    output_wrong = (kind in ("probs", "log-probs") and declared.output == "logits") or \
                   (kind == "logits" and declared.output == "probs") or \
                   (kind == "log-probs" and declared.output == "probs")
    same = as_declared is not None and best.spec == as_declared.spec
    fix_spec = replace(declared, output=reading) if same else best.preprocess
    fix = fix_spec.to_string()
    if fix == declared.to_string():
        fix = None
    base.fix = fix
    base.fix_accuracy = best.accuracy
    if d.declared.error is not None:
        base.status = "stop"
        base.reason = f"the model rejects its declared input ({d.declared.error})"
        return base
    if as_declared is not None and not same and best.accuracy < WORKING:
        pass  # no convention makes it work (an untrained net): nothing to fix, the run shows it
    elif as_declared is not None and not same:
        wins, losses, p = _paired(best.correct, as_declared.correct)
        gap = best.accuracy - as_declared.accuracy
        base.p_value = p
        base.data = {"wins": wins, "losses": losses, "n": n}
        lik = _likelihood(best, as_declared)
        if lik is not None:
            base.data["likelihood"] = lik
        if _decisive(lik, best, as_declared) and not (p < P_VALUE and gap >= MIN_GAP):
            base.status = "stop"
            base.reason = (f"as declared ({declared.to_string()}) it scores {as_declared.accuracy:.1%} on {n:,} "
                           f"MNIST test images with NLL {as_declared.nll:.2f}, but {best.accuracy:.1%} with NLL "
                           f"{best.nll:.2f} under {fix_spec.to_string()}: {as_declared.nll / best.nll:.0f}x the "
                           f"likelihood gap (lower on {lik['lower']:,} of {n:,} images, paired sign test "
                           f"p = {lik['p_value']:.1g}), the mark of the convention it was trained on; "
                           "shifted accuracies, mCE, calibration and OOD scores would be wrong as declared")
            return base
        if p < P_VALUE and gap >= MIN_GAP:
            base.status = "stop"
            base.reason = (f"it scores {as_declared.accuracy:.1%} on {n:,} MNIST test images as declared "
                           f"({declared.to_string()}) but {best.accuracy:.1%} with {fix_spec.to_string()} "
                           f"(paired McNemar p = {p:.1g})")
            if _decisive(lik, best, as_declared):  # say the likelihood gap too: the trained-on mark
                base.reason += (f", and NLL {as_declared.nll:.2f} vs {best.nll:.2f} (lower on {lik['lower']:,} "
                                f"of {n:,} images, paired sign test p = {lik['p_value']:.1g})")
            return base
        if p < P_VALUE:
            base.status = "warn"
            base.reason = (f"{fix_spec.to_string()} scores {best.accuracy:.1%} vs {as_declared.accuracy:.1%} "
                           f"as declared on {n:,} MNIST test images (a small but significant gap, "
                           f"p = {p:.1g}): shifted accuracies and mCE may be off too")
    if output_wrong:
        base.status = "stop"
        base.fix = base.fix or replace(declared, output=reading).to_string()
        what = {"probs": "probabilities (rows sum to 1: a softmax at the end)",
                "log-probs": "log-probabilities (exp of each row sums to 1: a log_softmax at the end)",
                "logits": "logits (unnormalised scores)"}[kind]
        base.reason = (f"its outputs are {what} but it is declared output={declared.output}, so "
                       "confidences and OOD scores would be computed from the wrong quantity")
        return base
    if base.status == "ok":
        finding = d.finding("input-range")
        if finding is not None and finding.severity == "warning" and d.fix_preprocess:
            # Accuracy ties but another scale gives far better confidences: the convention the
            # model was trained on. Its shifted accuracies can still differ by many points.
            base.status = "warn"
            base.fix = d.fix_preprocess
            base.fix_accuracy = d.best.accuracy
            base.reason = (f"clean accuracy is about the same as declared ({d.declared.accuracy:.1%}) and with "
                           f"{d.fix_preprocess} ({d.best.accuracy:.1%}), but the NLL is {d.declared.nll:.2f} vs "
                           f"{d.best.nll:.2f}: it was most likely trained with the latter, and shifted "
                           "accuracies, mCE, calibration and OOD scores can differ a lot between the two")
    return base


def guard(model, data_root=None, force: bool = False, warn=None, auto: bool = False,
          log=None) -> ConventionCheck | None:
    """eval's, bench's and the API's one call: stop (UserError) or warn, return the check for the report.

    ``warn(text)`` prints a warning; with ``force`` a stop becomes a warning. ``auto``
    (preprocess="auto"): apply the convention the check names, say so in one line (``log``).
    """
    check = check_convention(model, data_root=data_root)
    if auto:
        return apply(model, check, log)
    if check.status == "stop" and not force:
        raise UserError(check.message(model.path, marked=True))
    if check.status != "ok" and warn is not None:
        advice = replace(check, status="warn").message(model.path, marked=True)  # without the stop's "or force"
        warn(advice if check.status == "warn" else f"{advice} [{_force_word(True)} given: evaluated as declared]")
    return check


def apply(model, check: ConventionCheck, log=None) -> ConventionCheck:
    """preprocess="auto": put the detected convention in place of the declared one. A check with
    no fix (the declared convention is already the best) changes nothing."""
    from ..models.preprocess import Preprocess

    if check.status != "ok" and check.fix:
        model.preprocess = Preprocess.parse(check.fix)
        check.applied = True
        if log is not None:
            log(f"{Path(model.path).name}: {detected_line(check)}")
    return check


def detected_line(check: ConventionCheck) -> str:
    """"convention detected: ..." for the terminal and the report."""
    how = (f"{check.fix_accuracy:.1%} vs {check.declared_accuracy:.1%} as declared"
           if check.fix_accuracy is not None and check.declared_accuracy is not None else "")
    lik = check.data.get("likelihood")
    if lik:
        how += f", NLL {lik['nll_fix']:.2f} vs {lik['nll_declared']:.2f}"
    return f"convention detected: {_changed(check.fix, check.declared)} ({how}), applied"


def _changed(fix: str, declared: str) -> str:
    """The parts of the spec that differ ("range=norm:0.1307:0.3081, declared range=0-1"): the
    whole strings differ in one or two of their four parts and are too long to read side by side."""
    new = [p for p in fix.split(",") if p not in declared.split(",")]
    old = [p for p in declared.split(",") if p not in fix.split(",")]
    return ",".join(new) + (f" instead of the declared {','.join(old)}" if old else "")


def record(result, check: ConventionCheck | None) -> None:
    """Put the guard's verdict (and any warning) into the result, so the report shows it."""
    if check is None:
        return
    result.summary["convention_check"] = check.to_dict()
    if check.applied:
        result.summary["convention_detected"] = detected_line(check)
    elif check.status != "ok":
        advice = replace(check, status="warn").message(result.model.path)
        result.summary.setdefault("warnings", []).append(advice)
