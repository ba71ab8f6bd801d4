"""Jubako's regression agrees with Jubatus's C++ core (goldens from ``tests/oracle/record.py``).

Every method of ``REGRESSION_CASES`` is trained on the same examples in the same order as
the core was, and estimates the held-out rows: on the numeric data set (scikit-learn's
``diabetes``) the estimates are bit-for-bit the core's; on the synthetic set with multi-token
texts they agree to 1e-12 (Jubatus sums a text's tokens in its hash table's order).
"""

from __future__ import annotations

from typing import Any

import pytest

from engines.regression.model import RegressionModel
from tests.oracle.goldens import close, datum, golden

CASES = golden("regression")["cases"]


def _case_id(case: dict[str, Any]) -> str:
    parameter = case["config"]["parameter"]
    extra = parameter.get("method", "") if isinstance(parameter, dict) else ""
    return "-".join(filter(None, [case["config"]["method"], extra, case["data"]]))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_estimates_agree_with_the_core(case: dict[str, Any]) -> None:
    data = golden("regression")["datasets"][case["data"]]
    rows, targets = data["rows"], data["targets"]
    model = RegressionModel(case["config"])
    split = case["split"]
    for row, target in zip(rows[:split], targets[:split], strict=True):
        assert model.train([(target, datum(row))]) == 1
    estimates = model.estimate([datum(row) for row in rows[split:]])
    expected = case["estimates"]
    assert len(estimates) == len(expected)
    if case["data"] == "diabetes":
        assert estimates == expected
    else:
        mismatches = [
            (a, b) for a, b in zip(estimates, expected, strict=True) if not close(a, b, 1e-12)
        ]
        assert mismatches == []
