"""A deployment gate: a TOML policy of thresholds checked against a results.json.

    min_clean_accuracy = 0.98      # clean MNIST test accuracy
    max_clean_ece = 0.05           # clean expected calibration error (15 bins)
    max_accuracy_drop = 0.40       # clean − accuracy, for every (shift, severity) evaluated
    min_ood_auroc = 0.90           # every OOD set, max-softmax score

    [[shift]]                      # any number of these
    name = "fonts"                 # a shift or a family
    severities = [1, 2, 3]         # default: every severity in the results
    min_accuracy = 0.70
    aggregate = "mean"             # "mean" over the matching records, or "each" (every one)
    # max_ece = 0.2                # optional, same aggregation
    # max_accepted_error_rate = 0.05  # wrong AND accepted at the clean 95% confidence threshold
    # min_conformal_coverage = 0.8    # 90% sets calibrated on clean digits: true digit inside
    # min_detection_power = 0.9       # a softmax monitor flags batches of detection_batch images
    # detection_batch = 100           # 10, 100 or 1000 (default 100)
    # include_seen = true          # also gate on shifts the model saw in training

    [[real]]                       # real digit sets (eval --real); any number of these
    name = "digits"                # a real set as named in the results; omit for every one
    min_accuracy = 0.85
    max_accuracy_drop = 0.10       # clean − real accuracy
    # max_ece = 0.1

    [[attack]]                     # robust accuracy from eval --attack (worst case over its attacks)
    norm = "linf"                  # default: the results' norm
    eps = 0.3                      # or severities = [5]; default: every eps evaluated
    min_accuracy = 0.80
    attacks = ["autoattack"]       # optional: the attacks that must have run (sets expand)

Shifts the model saw in training (records marked ``seen``, see robustmnist/seen.py) are left
out of ``max_accuracy_drop`` and of every [[shift]] rule unless it says ``include_seen = true``
(top-level ``include_seen`` does the same for max_accuracy_drop): passing a bar on what the model
was taught proves nothing about robustness.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .results import Result

TOP_KEYS = {"min_clean_accuracy", "max_clean_ece", "max_accuracy_drop", "min_ood_auroc", "shift", "real",
            "attack", "include_seen"}
# deployment rules read each record's selective / conformal / detection (metrics/deployment.py)
DEPLOY_METRICS = (("accepted-error rate", "max_accepted_error_rate"), ("conformal coverage", "min_conformal_coverage"),
                  ("detection power", "min_detection_power"))
SHIFT_METRICS = (("accuracy", "min_accuracy"), ("ECE", "max_ece")) + DEPLOY_METRICS
SHIFT_KEYS = {"name", "severities", "aggregate", "include_seen", "detection_batch"} | {k for _, k in SHIFT_METRICS}
REAL_KEYS = {"name", "min_accuracy", "max_accuracy_drop", "max_ece"}
ATTACK_KEYS = {"norm", "eps", "severities", "min_accuracy", "attacks"}
# the standard AutoAttack set (as attacks/registry.py expands it; repeated here to keep gate torch-free)
ATTACK_SETS = {"autoattack": ("apgd-ce", "apgd-t", "fab-t", "square")}
FLAG_KEYS = {"include_seen"}


@dataclass(frozen=True)
class RuleResult:
    rule: str
    measured: float
    threshold: float
    passed: bool
    detail: str = ""


def load_policy(path: str | Path) -> dict:
    p = Path(path)
    try:
        policy = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"policy file {p} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"policy {p} is not valid TOML: {exc}") from None
    unknown = set(policy) - TOP_KEYS
    if unknown:
        raise UserError(f"policy {p}: unknown key(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(TOP_KEYS))}")
    for key in FLAG_KEYS:
        if key in policy and not isinstance(policy[key], bool):
            raise UserError(f"policy {p}: {key} must be true or false, got {policy[key]!r}")
    for key in TOP_KEYS - {"shift", "real", "attack"} - FLAG_KEYS:
        if key in policy:
            _check_number(p, key, policy[key])
    for i, rule in enumerate(_rule_tables(p, policy, "shift", SHIFT_KEYS), 1):
        if "name" not in rule or not ({k for _, k in SHIFT_METRICS} & set(rule)):
            raise UserError(f"policy {p}: [[shift]] #{i} needs a name and a threshold "
                            f"({', '.join(k for _, k in SHIFT_METRICS)})")
        if not isinstance(rule.get("detection_batch", 100), int) or isinstance(rule.get("detection_batch"), bool):
            raise UserError(f"policy {p}: [[shift]] #{i} detection_batch must be a whole number (10, 100, 1000)")
        if not isinstance(rule.get("include_seen", False), bool):
            raise UserError(f"policy {p}: [[shift]] #{i} include_seen must be true or false")
        if rule.get("aggregate", "mean") not in ("mean", "each"):
            raise UserError(f"policy {p}: [[shift]] #{i} aggregate must be 'mean' or 'each'")
        _check_numbers(p, f"[[shift]] #{i}", rule, [k for _, k in SHIFT_METRICS])
    for i, rule in enumerate(_rule_tables(p, policy, "real", REAL_KEYS), 1):
        if not (REAL_KEYS - {"name"}) & set(rule):
            raise UserError(f"policy {p}: [[real]] #{i} needs min_accuracy, max_accuracy_drop or max_ece")
        _check_numbers(p, f"[[real]] #{i}", rule, sorted(REAL_KEYS - {"name"}))
    for i, rule in enumerate(_rule_tables(p, policy, "attack", ATTACK_KEYS), 1):
        if "min_accuracy" not in rule:
            raise UserError(f"policy {p}: [[attack]] #{i} needs min_accuracy (a number)")
        _check_numbers(p, f"[[attack]] #{i}", rule, ("min_accuracy",))
    if not (set(policy) & (TOP_KEYS - FLAG_KEYS)):
        raise UserError(f"policy {p} sets no thresholds")
    return policy


def _rule_tables(p: Path, policy: dict, kind: str, known: set[str]) -> list[dict]:
    """The [[kind]] tables of a policy, each holding only keys the rule knows."""
    rules = policy.get(kind, [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise UserError(f"policy {p}: write {kind} rules as [[{kind}]] tables")
    for i, rule in enumerate(rules, 1):
        bad = set(rule) - known
        if bad:
            raise UserError(f"policy {p}: [[{kind}]] #{i} has unknown key(s) {', '.join(sorted(bad))}; "
                            f"known: {', '.join(sorted(known))}")
    return rules


def _check_numbers(p: Path, where: str, rule: dict, keys) -> None:
    for key in keys:
        if key in rule:
            _check_number(p, f"{where} {key}", rule[key])


def _check_number(p: Path, key: str, value) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UserError(f"policy {p}: {key} must be a number, got {value!r}")
    _check_threshold(p, key, value)


def _check_threshold(p: Path, key: str, value: float) -> None:
    """Every measured quantity is a fraction in [0, 1]: a threshold outside it can never pass,
    and one at the far end can never fail. Either way the rule gates nothing: a bad policy."""
    bare = key.split()[-1]
    if not 0.0 <= value <= 1.0:
        raise UserError(f"policy {p}: {key} = {value} is outside 0-1 (accuracies, ECE, drops and AUROC "
                        "are fractions), so the rule can never pass; write e.g. 0.98 for 98%")
    if (bare.startswith("min_") and value == 0.0) or (bare.startswith("max_") and value == 1.0):
        raise UserError(f"policy {p}: {key} = {value} can never fail; remove the rule or tighten it")


def check(result: Result, policy: dict) -> list[RuleResult]:
    out: list[RuleResult] = []
    clean = result.clean
    if "min_clean_accuracy" in policy:
        t = policy["min_clean_accuracy"]
        out.append(RuleResult("clean accuracy ≥", clean.accuracy, t, clean.accuracy >= t))
    if "max_clean_ece" in policy:
        t = policy["max_clean_ece"]
        out.append(RuleResult("clean ECE ≤", clean.ece, t, clean.ece <= t))
    if "max_accuracy_drop" in policy:
        t = policy["max_accuracy_drop"]
        if not result.shifts:
            raise UserError("the policy sets max_accuracy_drop but the results have no shifted sets")
        pool = result.shifts if policy.get("include_seen") else _unseen(result.shifts)
        if not pool:
            raise UserError("every shifted set in the results was seen in training, so "
                            "max_accuracy_drop has nothing to check; add include_seen = true "
                            "to the policy to gate on them anyway")
        worst = min(pool, key=lambda r: r.accuracy)
        drop = clean.accuracy - worst.accuracy
        out.append(RuleResult("largest accuracy drop ≤", drop, t, drop <= t, f"{worst.name} s{worst.severity}"))
    if "min_ood_auroc" in policy:
        t = policy["min_ood_auroc"]
        if not result.ood:
            raise UserError("the policy sets min_ood_auroc but the results have no OOD sets (eval --ood)")
        for o in result.ood:
            a = o.scores["msp"]["auroc"]
            out.append(RuleResult(f"OOD {o.name} AUROC (msp) ≥", a, t, a >= t))
    for rule in policy.get("shift", []):
        out.extend(_shift_rule(result, rule))
    for rule in policy.get("real", []):
        out.extend(_real_rule(result, rule))
    for rule in policy.get("attack", []):
        out.extend(_attack_rule(result, rule))
    return out


def _real_rule(result: Result, rule: dict) -> list[RuleResult]:
    name = rule.get("name")
    recs = [r for r in result.real if name is None or r.name == name]
    if not recs:
        have = ", ".join(r.name for r in result.real) or "no real sets (eval --real digits,...)"
        raise UserError(f"policy [[real]] rule for '{name or 'every set'}' matches nothing in the results; "
                        f"they have: {have}")
    out = []
    for r in recs:
        if "min_accuracy" in rule:
            t = rule["min_accuracy"]
            out.append(RuleResult(f"real {r.name} accuracy ≥", r.accuracy, t, r.accuracy >= t, f"n={r.n}"))
        if "max_accuracy_drop" in rule:
            t = rule["max_accuracy_drop"]
            drop = result.clean.accuracy - r.accuracy
            out.append(RuleResult(f"real {r.name} drop from clean ≤", drop, t, drop <= t))
        if "max_ece" in rule:
            t = rule["max_ece"]
            out.append(RuleResult(f"real {r.name} ECE ≤", r.ece, t, r.ece <= t))
    return out


def _unseen(records: list) -> list:
    return [r for r in records if not getattr(r, "seen", False)]


def _attack_rule(result: Result, rule: dict) -> list[RuleResult]:
    adv = result.adversarial
    if adv is None or not adv.records:
        raise UserError("the policy has an [[attack]] rule but the results have no adversarial section "
                        "(run robustmnist eval MODEL --attack pgd, or --attack autoattack)")
    norm = str(rule.get("norm", adv.norm)).lower()
    if norm != adv.norm:
        raise UserError(f"policy [[attack]] asks for norm {norm} but the results were attacked in {adv.norm}")
    need = [a for name in rule.get("attacks", []) for a in ATTACK_SETS.get(str(name).lower(), (str(name).lower(),))]
    missing = [a for a in need if a not in adv.attacks]
    if missing:
        raise UserError(f"policy [[attack]] requires {', '.join(missing)} but the results ran only "
                        f"{', '.join(adv.attacks)}; re-run eval with --attack {','.join(rule['attacks'])}")
    recs = adv.records
    if "eps" in rule:
        recs = [r for r in recs if abs(r.eps - float(rule["eps"])) < 1e-9]
    if "severities" in rule:
        recs = [r for r in recs if r.severity in rule["severities"]]
    if not recs:
        have = ", ".join(f"{r.eps:g}" for r in adv.records)
        raise UserError(f"policy [[attack]] eps {rule.get('eps', rule.get('severities'))} matches nothing in the "
                        f"results; they have {adv.norm} eps {have}")
    t = rule["min_accuracy"]
    return [RuleResult(f"robust accuracy {adv.norm} eps {r.eps:g} ≥", r.robust_accuracy, t,
                       r.robust_accuracy >= t, f"{'+'.join(adv.attacks)}, n={r.n}") for r in recs]


def _shift_rule(result: Result, rule: dict) -> list[RuleResult]:
    name = rule["name"]
    sevs = rule.get("severities")
    recs = [r for r in result.shifts if (r.name == name or r.family == name)
            and (sevs is None or r.severity in sevs)]
    if recs and not rule.get("include_seen"):
        unseen = _unseen(recs)
        if not unseen:
            raise UserError(f"policy rule for '{name}' matches only shifts the model saw in "
                            "training, which prove nothing about robustness; add "
                            "include_seen = true to the rule to gate on them anyway")
        recs = unseen
    if not recs:
        have = sorted({r.name for r in result.shifts} | {r.family for r in result.shifts})
        raise UserError(f"policy rule for '{name}' (severities {sevs or 'all'}) matches nothing in the "
                        f"results; they have: {', '.join(have) or 'no shifts'}")
    label = f"{name}" + (f" s{','.join(map(str, sevs))}" if sevs else "")
    out = []
    for metric, key in SHIFT_METRICS:
        if key not in rule:
            continue
        better = np.greater_equal if key.startswith("min") else np.less_equal
        if metric == "detection power":
            batch = rule.get("detection_batch", 100)
            metric = f"detection power (batch {batch})"
            recs = [_with_power(r, batch) for r in recs]
        t = rule[key]
        sym = "≥" if key.startswith("min") else "≤"
        edited = metric == "accuracy" and all(r.edited for r in recs)  # euro: read the edited digits
        what = "accuracy on the edited digits" if edited else metric
        if rule.get("aggregate", "mean") == "mean":
            v = float(np.mean([_measure(r, metric) for r in recs]))
            out.append(RuleResult(f"{label} mean {what} {sym}", v, t, bool(better(v, t)), f"{len(recs)} sets"))
        else:
            for r in recs:
                v = _measure(r, metric)
                detail = ", ".join(f"{k} {x:.1%}" for k, x in r.edited.get("read_as_other", {}).items()) \
                    if edited else ""
                out.append(RuleResult(f"{r.name} s{r.severity} {what} {sym}", v, t, bool(better(v, t)), detail))
    return out


def _with_power(r, batch: int):
    """The record, after checking it has a detection power at ``batch``."""
    det = _deploy(r, "detection")
    if batch not in det["batch_sizes"] or det["power"][det["batch_sizes"].index(batch)] is None:
        have = ", ".join(str(b) for b, v in zip(det["batch_sizes"], det["power"], strict=True) if v is not None)
        raise UserError(f"{r.name} s{r.severity} has no detection power at batch {batch} (measured: {have}"
                        "); a batch needs twice as many images per set (`n=`), or pick another detection_batch")
    return r


def _deploy(r, part: str) -> dict:
    rec = getattr(r, part, None)
    if not rec:
        raise UserError(f"{r.name} s{r.severity} has no {part} record: the results predate deployment "
                        "metrics; re-run robustmnist eval")
    return rec


def _measure(r, metric: str) -> float:
    # A euro shift edits only the 1s or 7s (~11% of a set): overall accuracy stays high even if
    # every edited digit is misread, so an accuracy rule reads the edited digits' accuracy.
    if metric == "ECE":
        return r.ece
    if metric == "accepted-error rate":
        return _deploy(r, "selective")["accepted_error_rate"]
    if metric == "conformal coverage":
        return _deploy(r, "conformal")["coverage"]
    if metric.startswith("detection power"):
        det = _deploy(r, "detection")
        return det["power"][det["batch_sizes"].index(int(metric.split()[-1][:-1]))]
    return r.edited["accuracy"] if r.edited else r.accuracy
