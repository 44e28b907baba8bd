"""Robust accuracy and attack cost on the MNIST test set, and agreement between implementations:
``benchmarks/attacks.json``.

    python benchmarks/attacks.py ladder  --models DIR --names lenet5,cnn-small,lenet5-pgd [--n 500] [--norm l2]
    python benchmarks/attacks.py robust  --models DIR --name lenet5-pgd [--n 100]
    python benchmarks/attacks.py agree   --models DIR --name lenet5 --eps 0.1 [--n 200]

``ladder``: our PGD-40 (1 restart) at the L-inf ladder 0.05-0.3 through ``evaluate_attacks``
(the path ``eval --attack pgd`` takes), per model, with CPU and wall seconds.
``robust``: on one model at L-inf 0.3: PGD-40, PGD-40 with 5 restarts, the reference standard
AutoAttack run as its authors run it (``run_standard_evaluation``, sequential), torchattacks'
standard AutoAttack, and our ``--attack autoattack`` (each reference component on its own).
``agree``: the same points attacked by our PGD, torchattacks' PGD (same steps, step size, random
start) and the reference APGD-CE: robust accuracy of each and the share of points on which the
robust/broken verdicts agree.

Each part merges into the JSON under its own key. One torch thread (on a shared 2-core box more
threads spin against the neighbours); the load average is recorded beside every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robustmnist.attacks.evaluate import evaluate_attacks, plan_attacks
from robustmnist.attacks.pgd import pgd
from robustmnist.attacks.registry import AttackConfig
from robustmnist.attacks.target import Target
from robustmnist.data.datasets import load_mnist
from robustmnist.models.load import load_model

HERE = Path(__file__).resolve().parent
OUT = HERE / "attacks.json"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "platform": platform.platform(),
            "note": "shared 2-core machine, heavily loaded by other jobs: wall seconds are inflated; "
                    "cpu_seconds (this process) is the fairer cost"}


class Timer:
    def __enter__(self):
        self.load_before = os.getloadavg()
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = round(time.perf_counter() - self.w, 2)
        self.cpu = round(time.process_time() - self.c, 2)
        self.load_after = os.getloadavg()

    def record(self) -> dict:
        return {"wall_seconds": self.wall, "cpu_seconds": self.cpu,
                "load_average_before": [round(v, 2) for v in self.load_before],
                "load_average_after": [round(v, 2) for v in self.load_after]}


def merge(key: str, value, sub: str | None = None) -> None:
    """Parts run as separate processes at the same time: read-modify-write under a lock."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "robustmnist-attacks-json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(OUT.read_text()) if OUT.is_file() else {"schema_version": 1}
        data["what"] = "robust accuracy (L-inf, 0-1 pixels) on a prefix of the MNIST test set; attack agreement"
        data["machine"] = machine()
        if sub is None:
            data[key] = value
        else:
            data.setdefault(key, {})[sub] = value
        OUT.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(value, indent=2))


def xy(n: int, dev):
    d = load_mnist("test")
    x = torch.from_numpy(d.images[:n]).float().div(255).unsqueeze(1).to(dev)
    y = torch.from_numpy(d.labels[:n].astype(np.int64)).to(dev)
    return d, x, y


def robust_flags(target, x, y, x_adv, eps) -> torch.Tensor:
    ok = ((x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-5) & (x_adv >= 0).flatten(1).all(1) & \
        (x_adv <= 1).flatten(1).all(1)
    with torch.no_grad():
        return (target(x).argmax(1) == y) & ((target(x_adv).argmax(1) == y) | ~ok)


def part_ladder(args) -> None:
    d = load_mnist("test")
    for name in args.names.split(","):
        m = load_model(Path(args.models) / f"{name}.pt")
        plan = plan_attacks(m, "pgd", n=args.n, norm=args.norm)
        with Timer() as t:
            sec = evaluate_attacks(m, d.images, d.labels, plan)
        rec = {"attack": "pgd-40, 1 restart, step 2.5*eps/40 (ours)", "n": sec.n,
                     "clean_accuracy": sec.checks["clean_accuracy"],
                     "robust_accuracy": {f"{r.eps:g}": r.robust_accuracy for r in sec.records},
                     "ci95": {f"{r.eps:g}": [round(v, 4) for v in r.robust_accuracy_ci] for r in sec.records},
                     "seconds_per_eps": {f"{r.eps:g}": r.seconds for r in sec.records},
                     "eta_upper_bound_seconds": round(plan.eta_seconds or 0, 1),
                     "warnings": sec.warnings, **t.record()}
        merge(f"ladder_n{args.n}" + ("" if args.norm == "linf" else f"_{args.norm}"), rec, name)


def part_robust(args) -> None:
    """One model at one eps; ``--only`` picks a piece so the pieces can run side by side."""
    m = load_model(Path(args.models) / f"{args.name}.pt")
    target = Target(m).eval()
    d, x, y = xy(args.n, m.device)
    eps = args.eps
    key = f"robust_{args.name}_eps{eps:g}_n{args.n}"
    only = set(args.only.split(",")) if args.only else {"pgd", "aa-ref", "aa-ours", "aa-ta"}
    with torch.no_grad():
        merge(key, float((target(x).argmax(1) == y).float().mean()), "clean_accuracy")
    if "pgd" in only:
        for label, restarts in (("pgd-40", 1), ("pgd-40 x5 restarts", 5)):
            with Timer() as t:
                plan = plan_attacks(m, "pgd", n=args.n, severities=[5], restarts=restarts)
                sec = evaluate_attacks(m, d.images, d.labels, plan)
            merge(key, {"robust_accuracy": sec.records[0].robust_accuracy, **t.record()}, label)
    if "aa-ref" in only:
        from pyautoattack import AutoAttack

        with Timer() as t:
            aa = AutoAttack(target, eps=eps, norm="Linf", seed=0, device=m.device, version="standard")
            x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=250)
            flags = robust_flags(target, x, y, x_adv, eps)
        _verdicts(key, "aa-ref", flags)
        merge(key, {"robust_accuracy": float(flags.float().mean()), **t.record()},
              "autoattack reference (pyautoattack 0.2.0, run_standard_evaluation, sequential)")
    if "aa-ours" in only:
        with Timer() as t:
            plan = plan_attacks(m, "autoattack", n=args.n, severities=[5])
            sec = evaluate_attacks(m, d.images, d.labels, plan)
        r = sec.records[0]
        merge(key, {"robust_accuracy": r.robust_accuracy,
                    "per_attack_robust_accuracy": {k: v["robust_accuracy"] for k, v in r.per_attack.items()},
                    "per_attack_seconds": {k: v["seconds"] for k, v in r.per_attack.items()},
                    "warnings": sec.warnings, **t.record()},
              "autoattack ours (--attack autoattack: each reference component on its own)")
    if "aa-ta" in only:
        import torchattacks

        with Timer() as t:
            ta = torchattacks.AutoAttack(target, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
            flags = robust_flags(target, x, y, ta(x, y), eps)
        _verdicts(key, "aa-ta", flags)
        merge(key, {"robust_accuracy": float(flags.float().mean()), **t.record()}, "autoattack torchattacks 3.5.1")


def _verdicts(key: str, which: str, flags: torch.Tensor) -> None:
    """Keep per-image verdicts; once both AutoAttacks ran, record on how many images they agree."""
    folder = Path(os.environ.get("ROBUSTMNIST_CACHE", "/tmp"))
    np.save(folder / f"{key}.{which}.npy", flags.cpu().numpy())
    paths = [folder / f"{key}.{w}.npy" for w in ("aa-ref", "aa-ta")]
    if all(p.is_file() for p in paths):
        a, b = (np.load(p) for p in paths)
        merge(key, {"share": float((a == b).mean()), "reference_only_robust": int((a & ~b).sum()),
                    "torchattacks_only_robust": int((~a & b).sum())}, "autoattack verdicts: reference vs torchattacks")


def part_agree(args) -> None:
    import torchattacks

    from robustmnist.attacks.reference import apgd_ce

    m = load_model(Path(args.models) / f"{args.name}.pt")
    target = Target(m).eval()
    _, x, y = xy(args.n, m.device)
    eps, steps = args.eps, 40
    with torch.no_grad():
        correct = target(x).argmax(1) == y
    xc, yc = x[correct], y[correct]
    flags, res = {}, {"model": args.name, "eps": eps, "n": args.n, "clean_correct": int(correct.sum()),
                      "settings": "PGD: 40 steps of 2.5*eps/40, uniform random start; APGD-CE: 100 iterations"}
    runs = {
        "ours pgd-40": lambda: pgd(target, xc, yc, AttackConfig("linf", eps, seed=0, steps=steps)),
        "torchattacks pgd-40": lambda: torchattacks.PGD(target, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                                                        random_start=True)(xc, yc),
        "reference apgd-ce": lambda: apgd_ce(target, xc, yc, AttackConfig("linf", eps, seed=0)),
    }
    for label, fn in runs.items():
        torch.manual_seed(0)
        with Timer() as t:
            x_adv = fn()
        flags[label] = robust_flags(target, xc, yc, x_adv, eps)
        res[label] = {"robust_accuracy": float(flags[label].sum()) / args.n, **t.record()}
    names = list(flags)
    res["verdict_agreement"] = {f"{a} vs {b}": float((flags[a] == flags[b]).float().mean())
                                for i, a in enumerate(names) for b in names[i + 1:]}
    merge(f"agree_{args.name}_eps{eps:g}_n{args.n}", res)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=("ladder", "robust", "agree"))
    ap.add_argument("--models", required=True)
    ap.add_argument("--names", default="lenet5,cnn-small,lenet5-pgd")
    ap.add_argument("--name", default="lenet5-pgd")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--norm", default="linf", help="ladder: linf or l2")
    ap.add_argument("--only", default="", help="robust: comma list of pgd, aa-ref, aa-ours, aa-ta")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    {"ladder": part_ladder, "robust": part_robust, "agree": part_agree}[args.part](args)


if __name__ == "__main__":
    sys.exit(main())
