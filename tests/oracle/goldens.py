"""Loading the golden files recorded by :mod:`tests.oracle.record` (Jubatus's C++ core)."""

from __future__ import annotations

import gzip
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from runtime import Datum

GOLDENS = Path(__file__).resolve().parent / "goldens"


@cache
def golden(name: str) -> Any:
    """The parsed ``goldens/<name>.json.gz``."""
    return json.loads(gzip.decompress((GOLDENS / f"{name}.json.gz").read_bytes()))


def datum(row: dict[str, Any]) -> Datum:
    return Datum(row)


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    """Equal, or both NaN, or within ``rel`` (the tests' float tolerance)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
