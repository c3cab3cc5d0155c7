"""Importing runs coe-sweep did not train (a lab's old runs, a paper's table) as a sweep in MLflow.

`table.read_table` reads and validates a csv / parquet / jsonl file against a column mapping (nothing
written); `write.write_import` writes the validated runs through the tracking writer as one sweep
tagged `coe_sweep.imported`, so the dashboard, `optimal`, `compare` and the API work on it.
"""

from coe_sweep.ingest.table import FIELDS, FORMATS, ImportedRun, ImportPlan, ImportRefused, read_table

__all__ = ["FIELDS", "FORMATS", "ImportPlan", "ImportRefused", "ImportedRun", "read_table"]
