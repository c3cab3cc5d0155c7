"""The sweep spec: YAML schema (schema.py), line-aware YAML reading (yaml_lines.py) and loading with
`file:line: field: found ...; expected ...` errors (load.py). Import from here:

    from coe_sweep.spec import SweepSpec, SpecError, load_spec
"""

from coe_sweep.spec.load import SpecError, SpecIssue, load_spec, validate_spec_data
from coe_sweep.spec.schema import SweepSpec

__all__ = ["SpecError", "SpecIssue", "SweepSpec", "load_spec", "validate_spec_data"]
