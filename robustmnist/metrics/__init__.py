"""Every statistic, named as the literature names it: pure functions on arrays and Results.

classification (accuracy + Wilson CI, calibration, flip rate), ood (AUROC, FPR95),
reference + corruption (CE/mCE against a reference model), paired (McNemar), leaderboard,
real (real digit sets: closest shifts, family rank correlation).
"""
