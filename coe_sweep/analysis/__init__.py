"""Fits and frontiers over a sweep's trials frame: IsoFLOP profiles, scaling laws, CoE-vs-MoE, Pareto sets.

numpy/scipy/pandas only (no web, no MLflow, no torch). Column names live in `columns`.
"""
