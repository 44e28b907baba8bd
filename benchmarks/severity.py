"""Severity calibration record: accuracy per shift and severity for a CNN trained on MNIST.

    robustmnist eval out/zoo/lenet5.pt --suite default --ood fashion,cifar10 --out out/reference
    python benchmarks/severity.py out/reference/results.json [out/mnistc/results.json]

Writes benchmarks/severity.json and prints the shifts whose accuracy does not fall with severity.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "severity.json"

# Shifts whose accuracy is not expected to fall at every step, and why (measured, not assumed:
# the fonts ladders were re-run with the face set held fixed and still rose from level 1 to 3).
PRINT_LADDER = ("level 1 (clean upright regular print, thin strokes) is itself the hardest print for "
                "an MNIST model; a slight right slant, scanner blur and bold faces (levels 2-3) make "
                "print look more like MNIST's broad pen strokes before the defects take over at 4-5")
EXPLAINED = {  # invert v2 grades the way to full inversion and falls with severity
    **{name: PRINT_LADDER for name in ("fonts", "fonts_sans", "fonts_serif", "fonts_mono", "fonts_ocr",
                                        "fonts_display", "fonts_segment", "fonts_handwriting",
                                        "euro_fonts")},
}


def main(path: str, mnistc: str | None = None) -> None:
    d = json.loads(Path(path).read_text())
    table: dict[str, dict] = {}
    for r in d["shifts"]:
        t = table.setdefault(r["name"], {"family": r["family"], "accuracy": {}})
        t["accuracy"][str(r["severity"])] = round(r["accuracy"], 4)
    not_monotonic = []
    for name, t in table.items():
        accs = [t["accuracy"][k] for k in sorted(t["accuracy"], key=int)]
        t["falls_with_severity"] = all(a >= b for a, b in zip(accs, accs[1:], strict=False))
        if not t["falls_with_severity"]:
            not_monotonic.append(name)
    per_sev: dict[str, list[float]] = {}
    for t in table.values():
        for k, v in t["accuracy"].items():
            per_sev.setdefault(k, []).append(v)
    out = {
        "model": {k: d["model"].get(k) for k in ("name", "arch", "sha256")},
        "suite": d["suite"].get("name"), "n": d["suite"].get("n"), "seed": d["seed"],
        "clean_accuracy": d["clean"]["accuracy"],
        "mean_accuracy_per_severity": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_sev.items())},
        "not_falling_with_severity": not_monotonic,
        "why_not_falling": {n: EXPLAINED[n] for n in not_monotonic if n in EXPLAINED},
        "shifts": table,
    }
    if mnistc:
        m = json.loads(Path(mnistc).read_text())
        out["mnist_c"] = {"clean_accuracy": m["clean"]["accuracy"],
                          "accuracy": {r["name"]: round(r["accuracy"], 4) for r in m["shifts"]},
                          "mean_accuracy": round(sum(r["accuracy"] for r in m["shifts"]) / len(m["shifts"]), 4)}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: clean {out['clean_accuracy']:.4f}, per severity {out['mean_accuracy_per_severity']}")
    print("not falling with severity:", not_monotonic or "none")


if __name__ == "__main__":
    main(*sys.argv[1:3])
