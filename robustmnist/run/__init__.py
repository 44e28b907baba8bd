"""The run layer: one plan, one loop, two executors.

plan (which sets, n and why: prepare + budget, seen shifts) -> collect (the loop: clean, sets,
real, OOD, attacks) driving an executor (local: worker pipeline; ray: a cluster) whose per-set
scores (scoring) each model's collector turns into a Result; outputs and resume write it.
"""
