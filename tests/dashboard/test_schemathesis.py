"""Property-based probing of the JSON API against its own OpenAPI document (schemathesis).

Every documented GET is called with generated parameters (schemathesis' strategies, driven by
Hypothesis directly: its pytest plugin's lazy fixtures do not run under this pytest); the checks
are schemathesis' defaults (no 5xx, status codes, content types and bodies conform to the
documented responses) except "schema-valid data must be accepted": budgets, sort columns and
Pareto objective pairs are checked against the sweep's data (a budget it has, a column it has,
two distinct columns), which a static schema cannot state; those refusals are the documented 422
naming the parameter. Most cases are pointed at the real seeded sweep so that the analysis
endpoints run, not only the 404 path.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from conftest import SWEEP
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

MAX_EXAMPLES = 30


def _operations(app) -> list:  # noqa: ANN001
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
def test_every_operation_conforms_to_its_schema(app) -> None:  # noqa: ANN001
    operations = _operations(app)
    assert len(operations) >= 9
    calls = itertools.count()
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def probe(case) -> None:  # noqa: ANN001
            if case.path_parameters and "sweep" in case.path_parameters and next(calls) % 4:
                case.path_parameters["sweep"] = SWEEP  # 3 of 4 cases hit the real sweep
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        probe()
    # the probing reached real answers, not only refusals
    assert any(200 in codes for label, codes in statuses.items() if "pareto" in label)
    assert any(200 in codes for label, codes in statuses.items() if "optimal" in label)
