"""The deployment records through a real run: every record has them, results without them still
load, the gate reads them, the report and the leaderboard show them."""

from __future__ import annotations

import json

import pytest

import robustmnist
from robustmnist.gate import check
from robustmnist.results import Result

from .helpers import untrained_checkpoint


@pytest.fixture
def run(tiny_data_root, tmp_path):
    model = untrained_checkpoint(tmp_path / "m.pt")
    return robustmnist.evaluate(model, suite="quick", shift="rotate,fonts", severity=[1, 3], n=120,
                                data_root=tiny_data_root, force=True, device="cpu", out=tmp_path / "out",
                                formats="json,html", log=None, warn=None)


def test_records_load_gate_and_report(run, tmp_path):
    for rec in [run.clean, *run.shifts]:
        assert set(rec.selective) >= {"threshold", "target_coverage", "coverage", "selective_accuracy",
                                      "accepted_error_rate", "aurc", "misclassification_auroc"}
        assert set(rec.conformal) >= {"alpha", "qhat", "coverage", "mean_set_size", "method"}
        assert set(rec.detection) >= {"batch_sizes", "power", "false_alarm", "test"}
        assert rec.selective["threshold"] == run.clean.selective["threshold"]  # fixed on clean
    assert run.clean.selective["coverage"] >= 0.95
    assert run.clean.detection["power"][2] is None  # 1,000 > the 60-image pool: no number
    d = json.loads((tmp_path / "out" / "results.json").read_text())
    for rec in [d["clean"], *d["shifts"]]:
        for key in ("selective", "conformal", "detection"):
            rec.pop(key)
    old = Result.from_dict(d)
    assert old.clean.selective is None
    assert 'id="deployment"' in (tmp_path / "out" / "report.html").read_text()

    # the gate reads them
    policy = {"shift": [{"name": "rotate", "max_accepted_error_rate": 0.99, "min_conformal_coverage": 0.01,
                         "min_detection_power": 0.01, "detection_batch": 10, "aggregate": "each"}]}
    rules = check(run, policy)
    assert len(rules) == 6 and {r.rule.split()[2] for r in rules} == {"accepted-error", "conformal", "detection"}
    with pytest.raises(robustmnist.UserError, match="batch 1000"):
        check(run, {"shift": [{"name": "rotate", "min_detection_power": 0.5, "detection_batch": 1000}]})


def test_markdown_leaderboard_has_the_deployment_columns():
    # the HTML and CSV had them; the Markdown (bench's leaderboard.md) shows the same four, — where unmeasured
    from robustmnist.metrics.leaderboard import LeaderRow
    from robustmnist.report.leaderboard import leaderboard_csv, leaderboard_md

    base = dict(clean_accuracy=0.99, clean_ci=(0.98, 0.995), mean_shifted_accuracy=0.8, mce=1.0, relative_mce=1.0,
                worst="fonts s5", worst_accuracy=0.6, ood_auroc=None, sha256="ab" * 32)
    rows = [LeaderRow(rank=1, name="cnn", **base, max_accepted_error=0.0123, min_conformal_coverage=0.456,
                      power_100=0.98, silent_failures=2),
            LeaderRow(rank=2, name="old", **base)]  # results made before the deployment records
    md = leaderboard_md(rows, {"name": "lenet5", "sha256": "cd" * 32, "first": {"name": "cnn"}})
    header, _, cnn, old = md.splitlines()[:4]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[-5:] == ["mCE vs cnn", "max accepted-error rate", "min conformal coverage",
                         "detection power (100)", "silent failures"]
    assert [c.strip() for c in cnn.strip("|").split("|")][-4:] == ["1.2%", "45.6%", "98.0%", "2"]
    assert [c.strip() for c in old.strip("|").split("|")][-4:] == ["—"] * 4
    assert all(line.count("|") == header.count("|") for line in (cnn, old, md.splitlines()[1]))
    assert "the last mCE column relative to the first model, cnn" in md and "silent failures = sets where" in md
    assert "0.0123,0.456,0.98,2" in leaderboard_csv(rows)  # the same numbers as the CSV
