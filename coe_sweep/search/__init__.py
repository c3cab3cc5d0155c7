"""Pure planning of a sweep: its space (space.py), budgets and trial plans (candidates.py), load-time
feasibility (feasibility.py), how many trials it runs (planned.py), and the `coe-sweep plan` table and
time model (sweep_plan.py, plan_table.py). No ray, no MLflow: coe_sweep.sweep runs what this plans.
"""
