"""Leaderboard and paired-comparison outputs (HTML, Markdown, CSV) for ``bench``/``compare``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import jinja2

from ..fileio import atomic_write_text
from ..metrics.corruption import mce_note
from ..metrics.deployment import SILENT_RULE
from ..metrics.leaderboard import LeaderRow
from ..metrics.paired import Comparison

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>robustmnist leaderboard</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1f2933}
table{border-collapse:collapse;width:100%;font-size:.95rem}th,td{padding:.45rem .6rem;
border-bottom:1px solid #e4e7eb;text-align:right}th:nth-child(2),td:nth-child(2),td.l{text-align:left}
th{background:#f5f7fa}tr:first-child td{font-weight:600}.note{color:#52606d;font-size:.85rem}
.wrap{overflow-x:auto}
</style></head><body>
<h1>robustmnist leaderboard</h1>
<p class="note">Suite <b>{{ suite }}</b>, {{ n }} images per set, seed {{ seed }}. Ranked by mean accuracy
over the shifted sets of families that no model here saw in training (all sets when none did).
mCE and relative mCE as ImageNet-C defines them, relative to
<b>{{ reference.name }}</b> (sha256 {{ reference.sha256[:12] }}…; — where the sets differ from the reference's,
e.g. another --n or seed). {{ note }}{% if first %} The last mCE column is
mCE relative to the first model, <b>{{ first }}</b>, instead.{% endif %}</p>
<div class="wrap"><table>
<tr><th>#</th><th>model</th><th>clean acc.</th><th>95% CI</th><th>mean shifted acc.</th>
<th>mCE (vs {{ reference.name }})</th><th>rel. mCE (vs {{ reference.name }})</th><th>worst shift</th>
<th>worst acc.</th><th>OOD AUROC</th><th>seen in training</th>{% if first %}<th>mCE vs {{ first }}</th>{% endif %}
<th title="largest share of a set's images wrong yet passing the clean threshold">max silent errors</th>
<th title="lowest coverage of the 90% conformal sets over the shifted sets">min conformal cov.</th>
<th title="mean share of 100-image batches a softmax KS monitor flags">monitor (100)</th><th>silent failures</th></tr>
{% for r in rows %}<tr><td>{{ r.rank }}</td><td class="l">{{ r.name }}</td><td>{{ pct(r.clean_accuracy) }}</td>
<td>{{ pct(r.clean_ci[0]) }}–{{ pct(r.clean_ci[1]) }}</td><td>{{ pct(r.mean_shifted_accuracy) }}</td>
<td>{{ pct(r.mce) }}</td><td>{{ pct(r.relative_mce) }}</td><td class="l">{{ r.worst }}</td>
<td>{{ pct(r.worst_accuracy) }}</td><td>{{ num(r.ood_auroc) }}</td><td class="l">{{ r.seen or "—" }}</td>
{%- if first %}<td>{{ pct(r.mce_vs_first) }}</td>{% endif %}
<td>{{ pct(r.max_accepted_error) }}</td><td>{{ pct(r.min_conformal_coverage) }}</td><td>{{ pct(r.power_100) }}</td>
<td>{{ "—" if r.silent_failures is none else r.silent_failures }}</td></tr>
{% endfor %}</table></div>
{% if real_corr %}<h2>Which parts of the suite predict your data</h2>
<p class="note">For each real digit set: Spearman's rank correlation, across the benchmarked models, between a
shift family's mean accuracy and the accuracy on the real set. High ρ = that family ranks the models as the real
digits do. Shown from {{ min_models }} models up.</p>
{% for c in real_corr %}<h3>{{ c.real }} <small>({{ c.n_models }} models)</small></h3>
<div class="wrap"><table><tr><th>family</th><th>ρ</th><th>models</th></tr>
{% for f in c.families %}<tr><td class="l">{{ f.family }}</td><td>{{ rho(f.rho) }}</td><td>{{ f.n_models }}</td></tr>
{% endfor %}</table></div>{% endfor %}{% endif %}
</body></html>
"""


def _pct(v):
    return "—" if v is None or v != v else f"{100 * v:.1f}%"


def _num(v):
    return "—" if v is None or v != v else f"{v:.3f}"


def _first(reference: dict) -> str | None:
    return (reference.get("first") or {}).get("name")


def _rho(v):
    return "—" if v is None or v != v else f"{v:+.2f}"


def leaderboard_html(rows: list[LeaderRow], suite: str, n: int, seed: int, reference: dict,
                     real_corr: list[dict] | None = None) -> str:
    from ..metrics.real import MIN_MODELS

    env = jinja2.Environment(autoescape=True)
    return env.from_string(_HTML).render(rows=rows, suite=suite, n=n, seed=seed, reference=reference,
                                         note=mce_note(reference),
                                         first=_first(reference), pct=_pct, num=_num, rho=_rho,
                                         real_corr=real_corr or [], min_models=MIN_MODELS)


def real_correlation_md(real_corr: list[dict]) -> list[str]:
    lines = []
    for c in real_corr:
        name = c["real"].replace("|", "\\|")
        lines += ["", f"Which families predict real set {name} ({c['n_models']} models; "
                  "Spearman ρ between family accuracy and real accuracy):", "", "| family | ρ | models |",
                  "|---|---:|---:|"]
        lines += [f"| {f['family']} | {_rho(f['rho'])} | {f['n_models']} |" for f in c["families"]]
    return lines


# the deployment columns (summary["deployment"], metrics/deployment.py), as the HTML's header titles say
_DEPLOY_MD = ("Does it know when it is wrong? Over the shifted sets not seen in training: max accepted-error rate = "
              "the largest share of a set's images wrong yet accepted at the clean 95% confidence threshold; "
              "min conformal coverage = the lowest share of images whose 90% conformal set (calibrated on clean "
              "digits) holds the true digit; detection power (100) = the mean share of 100-image batches a softmax "
              f"KS monitor flags; silent failures = sets where {SILENT_RULE}. — = not measured.")


def leaderboard_md(rows: list[LeaderRow], reference: dict, real_corr: list[dict] | None = None) -> str:
    first = _first(reference)
    ref = reference["name"].replace("|", "\\|")
    robust = next((r.robust_label for r in rows if r.robust_label), "")
    extra = f" mCE vs {first.replace('|', chr(92) + '|')} |" if first else ""
    lines = [f"| # | model | clean | mean shifted | mCE (vs {ref}) | rel. mCE | worst shift | OOD AUROC |"
             + (f" robust ({robust}) |" if robust else "") + " seen in training |" + extra
             + " max accepted-error rate | min conformal coverage | detection power (100) | silent failures |",
             "|---|---|---:|---:|---:|---:|---|---:|" + ("---:|" if robust else "") + "---|"
             + ("---:|" if first else "") + "---:|---:|---:|---:|"]
    for r in rows:
        name = r.name.replace("|", "\\|")
        lines.append(f"| {r.rank} | {name} | {_pct(r.clean_accuracy)} | {_pct(r.mean_shifted_accuracy)} | "
                     f"{_pct(r.mce)} | {_pct(r.relative_mce)} | {r.worst} ({_pct(r.worst_accuracy)}) | "
                     f"{_num(r.ood_auroc)} |" + (f" {_pct(r.robust_accuracy)} |" if robust else "")
                     + f" {r.seen.replace('|', '') or '—'} |"
                     + (f" {_pct(r.mce_vs_first)} |" if first else "")
                     + f" {_pct(r.max_accepted_error)} | {_pct(r.min_conformal_coverage)} | {_pct(r.power_100)} |"
                     + f" {'—' if r.silent_failures is None else r.silent_failures} |")
    lines.append("")
    lines.append(f"mCE relative to {reference['name']} (sha256 {reference['sha256'][:12]}…), ImageNet-C definition"
                 + (f"; the last mCE column relative to the first model, {first}." if first else ".")
                 + f" {mce_note(reference)}")
    lines.append("")
    lines.append(_DEPLOY_MD)
    lines += real_correlation_md(real_corr or [])
    return "\n".join(lines) + "\n"


def leaderboard_csv(rows: list[LeaderRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "model", "clean_accuracy", "clean_ci_low", "clean_ci_high", "mean_shifted_accuracy",
                "mce", "relative_mce", "worst_shift", "worst_accuracy", "ood_mean_auroc", "sha256",
                "seen_in_training", "mce_vs_first_model", "max_accepted_error_rate", "min_conformal_coverage",
                "detection_power_100", "silent_failures"])
    for r in rows:
        w.writerow([r.rank, r.name, r.clean_accuracy, r.clean_ci[0], r.clean_ci[1], r.mean_shifted_accuracy,
                    r.mce, r.relative_mce, r.worst, r.worst_accuracy, r.ood_auroc, r.sha256, r.seen,
                    r.mce_vs_first, r.max_accepted_error, r.min_conformal_coverage, r.power_100,
                    r.silent_failures])
    return buf.getvalue()


def write_leaderboard(rows: list[LeaderRow], out: Path, suite: str, n: int, seed: int,
                      reference: dict, real_corr: list[dict] | None = None) -> dict[str, Path]:
    paths = {"html": out / "leaderboard.html", "md": out / "leaderboard.md", "csv": out / "leaderboard.csv"}
    atomic_write_text(paths["html"], leaderboard_html(rows, suite, n, seed, reference, real_corr))
    atomic_write_text(paths["md"], leaderboard_md(rows, reference, real_corr))
    if real_corr:
        from ..fileio import atomic_write_json

        paths["real"] = out / "real_correlation.json"
        atomic_write_json(paths["real"], real_corr)
    atomic_write_text(paths["csv"], leaderboard_csv(rows))
    return paths


def comparison_md(rows: list[Comparison], name_a: str, name_b: str, winners: dict[str, str]) -> str:
    lines = [f"A = {name_a}, B = {name_b}. McNemar's exact test on paired per-image correctness.", "",
             "| set | acc A | acc B | B − A | A✓B✗ | A✗B✓ | p |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        star = " *" if r.p_value < 0.05 else ""
        lines.append(f"| {r.set_id} | {_pct(r.acc_a)} | {_pct(r.acc_b)} | {100 * r.diff:+.1f} pt | {r.b} | "
                     f"{r.c} | {r.p_value:.3g}{star} |")
    lines += ["", "Winner per family (more significant wins, p < 0.05): "
              + ", ".join(f"{f}: {w}" for f, w in winners.items())]
    return "\n".join(lines) + "\n"
