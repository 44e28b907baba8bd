"""Selective prediction, conformal sets and BBSD shift detection, checked independently of the code."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from robustmnist.metrics import conformal, detection, selective
from robustmnist.metrics.deployment import calibrate, clean_metrics, deployment_metrics


def _toy(n=400, seed=0):
    rng = np.random.default_rng(seed)
    conf = np.round(rng.random(n), 2)  # rounded: plenty of ties
    correct = rng.random(n) < conf  # more confident -> more often right
    return conf, correct


def test_coverage_and_silent_errors_match_plain_numpy():
    conf, correct = _toy()
    t = selective.clean_threshold(conf, 0.8)
    assert (conf >= t).mean() >= 0.8 and (conf > t).mean() < 0.8  # the largest such threshold
    m = selective.selective_metrics(conf, correct, t, 0.8)
    acc = conf >= t
    assert m["coverage"] == pytest.approx(acc.mean())
    assert m["selective_accuracy"] == pytest.approx(correct[acc].mean())
    assert m["accepted_error_rate"] == pytest.approx((acc & ~correct).sum() / len(conf))


def test_aurc_against_a_curve_by_hand():
    conf, correct = _toy(200, 1)
    area, prev = 0.0, 0.0
    for c in sorted(set(conf.tolist()), reverse=True):  # one step per distinct threshold
        keep = conf >= c
        cov = keep.mean()
        area += (cov - prev) * (~correct[keep]).mean()
        prev = cov
    assert selective.aurc(conf, correct) == pytest.approx(area, abs=1e-12)
    # without ties it is the mean over k of the risk of the k most confident (Geifman & El-Yaniv)
    c2 = np.random.default_rng(2).random(50)
    w = c2 < 0.3
    order = np.argsort(-c2)
    by_k = np.mean([w[order[:k]].mean() for k in range(1, 51)])
    assert selective.aurc(c2, ~w) == pytest.approx(by_k)


def test_misclassification_auroc_against_pairs():
    conf, correct = _toy(120, 3)
    pos, neg = conf[correct], conf[~correct]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert selective.misclassification_auroc(conf, correct) == pytest.approx(pairs)
    assert selective.misclassification_auroc(conf, np.ones(len(conf), bool)) is None


def test_max_softmax_keeps_order_float32_loses():
    logits = np.array([[40.0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [30.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    msp = selective.max_softmax(logits)
    assert msp[0] > msp[1]


def _exchangeable(n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in probs])  # a calibrated model: y ~ p
    return logits.astype(np.float32), probs, labels


def test_conformal_quantile_and_sets_by_hand():
    s = np.arange(1, 11) / 10.0  # n = 10, alpha 0.2: ceil(11 * 0.8) = 9th smallest
    assert conformal.conformal_quantile(s, 0.2) == pytest.approx(0.9)
    assert conformal.conformal_quantile(s[:3], 0.1) == np.inf  # too few to promise 90%
    probs = np.array([[0.7, 0.2, 0.1] + [0] * 7])
    assert conformal.prediction_sets(probs, 0.85)[0, :3].tolist() == [True, True, False]


def test_clean_conformal_coverage_is_one_minus_alpha():
    """Coverage on held-out exchangeable digits: 1 - alpha within sampling error, over many splits."""
    covs = []
    for seed in range(20):
        _, probs, labels = _exchangeable(2000, seed)
        covs.append(conformal.conformal_metrics(probs, labels, conformal.cross_fit_qhat(probs, labels, 0.1), 0.1)
                    ["coverage"])
    se = np.sqrt(0.1 * 0.9 / 2000)
    assert abs(covs[0] - 0.9) < 4 * se
    assert abs(np.mean(covs) - 0.9) < 4 * se / np.sqrt(20) + 1 / 1001  # >= 1-alpha, <= 1-alpha+1/(n+1)


def test_ks_statistic_and_p_match_scipy():
    rng = np.random.default_rng(4)
    ref = np.sort(np.round(rng.random((300, 10)), 2).astype(np.float32), axis=0)  # ties on purpose
    pool = np.round(rng.random((200, 10)) ** 1.3, 2).astype(np.float32)
    left, right = detection.ks_ranks(ref, pool)
    idx = np.stack([rng.choice(200, 40, replace=False) for _ in range(4)])
    d = detection.ks_statistic_batches(left[:, idx], right[:, idx], 300)
    p = detection.ks_pvalue(d, 300, 40)
    for t in range(4):
        for k in range(10):
            r = ks_2samp(pool[idx[t], k], ref[:, k], method="asymp")
            assert d[k, t] == pytest.approx(r.statistic, abs=1e-12)
            assert p[k, t] == pytest.approx(r.pvalue, rel=1e-9, abs=1e-15)
            # the critical value decides exactly as the p-value does
            assert (d[k, t] > detection.ks_critical_value(300, 40, 0.05)) == (r.pvalue < 0.05)


def test_detection_false_alarm_and_power_grow_with_batch():
    logits, probs, labels = _exchangeable(4000, 7)
    cal = calibrate(logits, labels)
    fa = cal.reference.false_alarm
    assert all(f is not None and f <= 0.15 for f in fa)  # 5% test, Bonferroni-conservative
    shifted = logits * 0.6  # a softer model output: a real shift of the softmax
    power = deployment_metrics(cal, shifted, labels)["detection"]["power"]
    assert None not in power  # the pool holds 2,000 images: every batch size is measured
    assert power[0] <= power[1] <= power[2] and power[2] == 1.0 and power[0] < 0.9


def test_records_are_deterministic_and_clean_power_is_false_alarm():
    logits, _, labels = _exchangeable(600, 8)
    cal = calibrate(logits, labels)
    a = deployment_metrics(cal, logits[::-1].copy(), labels[::-1].copy())
    b = deployment_metrics(calibrate(logits, labels), logits[::-1].copy(), labels[::-1].copy())
    assert a == b
    c = clean_metrics(cal, logits, labels)
    assert c["detection"]["power"] == c["detection"]["false_alarm"]
    assert c["detection"]["power"][2] is None  # a batch of 1,000 > the 300-image pool: no number
    assert c["selective"]["coverage"] >= 0.95


def test_one_sort_serves_aurc_curve_and_auroc_with_ties():
    """selective_metrics shares one ordering between AURC, the curve and the AUROC: each must equal
    its own computation, with saturated confidences (many ties) as float32 softmax makes them."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    conf = np.round(rng.random(400), 1)  # 11 distinct values: long tie runs
    correct = rng.random(400) < conf
    m = selective.selective_metrics(conf, correct, threshold=0.5)
    ranks = rankdata(conf)
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    by_rankdata = (ranks[correct].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert m["misclassification_auroc"] == by_rankdata  # exact: half-integer rank sums
    assert m["aurc"] == selective.aurc(conf, correct)
    assert m["risk_coverage"] == selective.curve_on_grid(conf, correct)


def test_every_set_is_tested_on_the_same_batches_without_replacement():
    from robustmnist.metrics import detection

    a = detection.batches(300)
    assert a is detection.batches(300)  # drawn once per pool size, shared by every set
    assert a[2] is None  # 1,000 > 300: no batch, never a resampled one
    for idx, b in zip(a[:2], (10, 100), strict=True):
        assert idx.shape == (detection.TRIALS, b) and not idx.flags.writeable
        assert all(len(set(row)) == b for row in idx.tolist()) and idx.min() >= 0 and idx.max() < 300


def test_critical_values_are_kept_on_disk_and_match_scipy(tmp_path, monkeypatch):
    from scipy.stats import kstwo

    from robustmnist.metrics import detection
    from robustmnist.run import ks_cache

    monkeypatch.setenv("ROBUSTMNIST_CACHE", str(tmp_path))
    monkeypatch.setattr(detection, "CRITICAL", {})
    assert ks_cache.load() == 0  # nothing on disk yet
    d = detection.ks_critical_value(2500, 100, 0.005)
    assert d == float(kstwo.isf(0.005, detection.ks_effective_n(2500, 100)))
    ks_cache.save(0)
    monkeypatch.setattr(detection, "CRITICAL", {})
    assert ks_cache.load() == 1 and detection.CRITICAL[(96, 0.005)] == d  # exact: JSON round-trips floats
    (tmp_path / ks_cache.FILE).write_text((tmp_path / ks_cache.FILE).read_text().replace('"scipy": "', '"scipy": "0'))
    monkeypatch.setattr(detection, "CRITICAL", {})
    assert ks_cache.load() == 0  # another scipy's values are not trusted
    (tmp_path / ks_cache.FILE).write_text("{not json")
    assert ks_cache.load() == 0 and detection.ks_critical_value(2500, 100, 0.005) == d
