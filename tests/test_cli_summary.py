"""The terminal summary of ``robustmnist eval``: every named shift's ladder with its interval,
a whole-suite run kept short, and a progress bar that ends at its total."""

from __future__ import annotations

import re

from robustmnist.cli.eval_cmd import print_summary

from .helpers import run_cli, untrained_checkpoint
from .report_factory import make_result


def _summary(capsys, result, **kw) -> str:
    capsys.readouterr()
    print_summary(result, {}, **kw)
    return capsys.readouterr().out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]


def test_named_shifts_show_each_severity_with_its_interval(capsys):
    r = make_result("lenet5", n_shifts=2)
    text = _summary(capsys, r, per_shift=True)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80  # fits a default terminal
    table = lines[next(i for i, ln in enumerate(lines) if "accuracy % per severity" in ln):]
    header = _cells(next(ln for ln in table if "┃" in ln))
    assert header == ["shift", "s1", "s2", "s3", "s4", "s5"]
    body = [_cells(ln) for ln in table if ln.startswith("│")]
    for name in dict.fromkeys(x.name for x in r.shifts):
        i = next(i for i, row in enumerate(body) if row[0] == name)
        accs, cis = body[i], body[i + 1]  # the accuracy, its 95% interval on the line below
        for x in (x for x in r.shifts if x.name == name):
            lo, hi = x.accuracy_ci
            col = header.index(f"s{x.severity}")
            assert accs[col] == f"{x.accuracy * 100:.1f}", (name, x.severity, accs)
            assert cis[col] == f"{lo * 100:.1f}–{hi * 100:.1f}", (name, x.severity, cis)


def test_whole_suite_summary_stays_short(capsys):
    r = make_result("lenet5", n_shifts=10)
    short = _summary(capsys, r)
    assert "per severity" not in short
    assert not any(x.name in short for x in r.shifts if x.name != r.summary["worst_shift"]["name"])
def test_eval_with_shift_prints_the_ladder(tmp_path, tiny_data_root, monkeypatch, capsys):
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    model = untrained_checkpoint(tmp_path / "m.pt")
    code, out, err = run_cli(monkeypatch, capsys, "eval", str(model), "--shift", "rotate", "--severity", "1,3",
                             "--n", "50", "--force", "--format", "json", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "accuracy % per severity" in out
    row = next(_cells(ln) for ln in out.splitlines() if ln.startswith("│") and _cells(ln)[0] == "rotate")
    assert len(row) == 3  # shift, s1, s3


def _finished(bar) -> tuple[float, float]:
    task = bar.bar.tasks[0]
    return task.completed, task.total


def test_progress_ends_at_its_total_with_real_and_ood_sets(tmp_path, tiny_data_root):
    """The bar eval and bench draw (cli.common.RunProgress) counts real, OOD and attacked images
    in its total, so it never reads past it (528000/526000 once, with --real)."""
    from robustmnist.api import bench, evaluate
    from robustmnist.cli.common import RunProgress

    a, b = untrained_checkpoint(tmp_path / "a.pt"), untrained_checkpoint(tmp_path / "b.pt", "mlp-784-50-50-10")
    kw = dict(shift="rotate", severity=[1, 2], n=40, ood="fashion", real="digits", data_root=tiny_data_root,
              force=True, log=None, warn=None)
    with RunProgress(quiet=True) as bar:
        evaluate(a, attack="fgsm", attack_severity="1", attack_n=8, progress=bar, **kw)
    done, total = _finished(bar)
    assert done == total and total > 0
    with RunProgress(quiet=True, counted=("score",)) as bar:  # bench's own bar: attacks are not counted
        bench([a, b], progress=bar, **kw)
    done, total = _finished(bar)
    assert done == total and total > 0
