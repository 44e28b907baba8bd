"""Comparisons on nested sets: recipe first, then bytes on the common prefix, never silently."""

from __future__ import annotations

import numpy as np
import pytest

from robustmnist.metrics import corruption as corruption_mod
from robustmnist.metrics import paired as paired_mod
from robustmnist.metrics import reference as reference_mod
from robustmnist.shifts import get_shift
from robustmnist.shifts.fingerprint import chunk_digests, compare_prefix
from robustmnist.shifts.sets import NEST_CHUNK, make_set
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits
from .test_bench import make_result

DEFAULT = load_suite("default")


def _with_sets(result, n: int, chunks: dict, version: int = 2):
    result.clean.n = n
    result.suite["n"] = n
    for r in result.shifts:
        r.n, r.version, r.chunks = n, version, chunks[(r.name, r.severity)][: -(-n // NEST_CHUNK)]
    return result


def _reference(n: int, correct: dict[str, np.ndarray]):
    chunks = {("rotate", 1): [f"r{k}" for k in range(n // NEST_CHUNK)],
              ("gaussian_noise", 1): [f"g{k}" for k in range(n // NEST_CHUNK)]}
    ref = _with_sets(make_result("ref", 0.9, {("rotate", 1): 0.8, ("gaussian_noise", 1): 0.7}), n, chunks)
    labels = np.zeros(n, dtype=np.int8)
    preds = {"labels": labels, **{k: np.where(v, 0, 1).astype(np.int8) for k, v in correct.items()}}
    return reference_mod.reference_from_result(ref, predictions=preds), chunks


def test_fingerprints_compare_on_the_common_prefix():
    a = [f"c{k}" for k in range(20)]
    assert compare_prefix(a[:2], 1000, a, 10_000).identical
    m = compare_prefix(a[:2] + ["x"], 1200, a, 10_000)
    assert not m.differs and m.verified == 1000 and not m.identical  # a part chunk cannot be checked
    assert compare_prefix(["c0", "zz"], 1000, a, 10_000).differing_chunks == [1]
    images, labels = synthetic_digits(NEST_CHUNK + 5)
    assert len(chunk_digests(images, labels)) == 2


def test_mce_at_a_smaller_n_uses_the_references_errors_on_that_prefix():
    n_ref = 2 * NEST_CHUNK
    right = np.ones(n_ref, dtype=bool)
    rot = right.copy()
    rot[:100] = False  # all the reference's rotate errors sit in the first chunk
    ref, chunks = _reference(n_ref, {"clean": right, "rotate@1": rot, "gaussian_noise@1": ~right.copy()})
    f = _with_sets(make_result("f", 0.95, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.5}), NEST_CHUNK, chunks)
    ce = corruption_mod.corruption_errors(f, ref)
    # reference error on the first 500 images: 100/500, not 100/1000 (its error at n=1000)
    assert ce["ce"]["rotate"] == pytest.approx(0.1 / 0.2)
    assert ce["ce"]["gaussian_noise"] == pytest.approx(0.5 / 1.0)
    assert ce["sets_matched"] == 2 and ce["sets"] == []


def test_sets_with_other_bytes_or_recipes_are_listed_not_dropped_silently():
    n = 2 * NEST_CHUNK
    ref, chunks = _reference(n, {"clean": np.ones(n, bool), "rotate@1": np.arange(n) % 4 > 0,
                                 "gaussian_noise@1": np.arange(n) % 2 > 0})
    f = _with_sets(make_result("f", 0.95, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.5}), n, chunks)
    f.shifts[0].chunks = ["r0", "other"]
    f.shifts[1].version = 1
    corruption_mod.apply_reference(f, ref)
    listed = {d["set"]: d for d in f.summary["reference_sets"]["listed"]}
    assert not listed["rotate@1"]["kept"] and "chunks" in listed["rotate@1"]["reason"]
    assert "500-999" in listed["rotate@1"]["reason"]
    assert not listed["gaussian_noise@1"]["kept"] and "version" in listed["gaussian_noise@1"]["reason"]
    assert f.summary["reference_sets"]["matched"] == 0 and "mce" not in f.summary


def test_compare_pairs_models_on_their_common_prefix():
    chunks = {("rotate", 1): ["r0", "r1"]}
    a = _with_sets(make_result("a", 0.9, {("rotate", 1): 0.8}), 2 * NEST_CHUNK, chunks)
    b = _with_sets(make_result("b", 0.9, {("rotate", 1): 0.8}), NEST_CHUNK, chunks)
    labels = np.arange(2 * NEST_CHUNK) % 10
    pa = {"clean": labels, "labels": labels, "rotate@1": labels}
    pb = {"clean": labels[:NEST_CHUNK], "labels": labels[:NEST_CHUNK], "rotate@1": (labels[:NEST_CHUNK] + 1) % 10}
    rows = {r.set_id: r for r in paired_mod.compare(a, pa, b, pb)}
    assert rows["rotate@1"].n == NEST_CHUNK and rows["rotate@1"].acc_b == 0.0
    b.shifts[0].chunks = ["other"]
    pairs, listed = paired_mod.pair_sets(a, b)
    assert [sid for sid, _ in pairs] == ["clean"] and listed[0]["set"] == "rotate@1"


def test_verify_counts_the_pixels_a_cpu_changed(monkeypatch, tmp_path):
    from robustmnist.shifts import verify

    images, labels = synthetic_digits(NEST_CHUNK + 20, seed=1)
    shift = get_shift("rotate")
    suite = DEFAULT.restrict(["rotate"], [2])
    params = suite.params("rotate", 2)
    x, y = make_set(shift, 2, params, images, labels, len(images), 0)
    pins = reference_mod.Reference("ref", "", 0.0, {}, "", sets={("rotate", 2): reference_mod.RefSet(
        0.1, len(images), chunks=tuple(chunk_digests(x, y)), version=shift.version, params=params)})
    assert [c.status for c in verify.verify_suite(suite, pins, images, labels, len(images))] == ["match"]

    # A CPU whose kernels move three pixels of chunk 1 by one level (the parent only: the
    # portable subprocess makes the true set, as torch's scalar kernels would).
    real_chunk = verify.make_chunk

    def drifting_chunk(*args):
        cx, cy = real_chunk(*args)
        if args[-1] == 1:
            cx = cx.copy()
            cx[0, 5, 5:8] ^= 1
        return cx, cy

    # wherever this process makes chunks: in it (sets), in forked workers (pipeline), in verify
    from robustmnist.shifts import pipeline, sets

    for module in (sets, pipeline, verify):
        monkeypatch.setattr(module, "make_chunk", drifting_chunk)
    (check,) = verify.verify_suite(suite, pins, images, labels, len(images))
    assert check.status == "differ" and "1 of 2 chunks" in check.detail
    assert (check.pixels, check.images, check.max_abs) == (3, 1, 1)


@pytest.mark.mirror
def test_shifts_verify_cli_matches_the_pins(mirror_root, monkeypatch, capsys):
    # CI's small version of `robustmnist shifts verify`: a few shifts, the first chunk (in-process:
    # a set that differed would still be regenerated in verify's own portable-kernel subprocess).
    from .helpers import run_cli

    code, out, err = run_cli(monkeypatch, capsys, "shifts", "verify", "--shift", "rotate,fonts_mono,euro_one",
                             "--n", "500", "--data-root", str(mirror_root))
    assert code == 0, out + err
    assert "15 of 15 pinned sets match (500 images each)" in out
