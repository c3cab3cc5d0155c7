"""Sweep search: budgets, candidate configs and feasibility (candidates.py, space.py, constraints.py),
and the Ray Tune orchestration (orchestrate.py, the one module that imports ray).

Nothing is imported here so that `import coe_sweep.search.candidates` stays light (no ray).
"""
