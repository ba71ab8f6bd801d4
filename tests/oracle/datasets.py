"""Fixed, seeded inputs shared by the golden recorder and the tests (no downloads)."""

from __future__ import annotations

import random

STRING_WORDS = ("apple", "banana", "cherry", "durian", "elder", "fig", "grape", "kiwi")


def synthetic_rows(seed: int, count: int) -> list[dict[str, object]]:
    """Rows mixing numbers and short texts (for idf, ngrams and string features)."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for _ in range(count):
        row: dict[str, object] = {}
        for _ in range(rng.randint(1, 4)):
            row[f"n{rng.randint(0, 7)}"] = round(rng.gauss(0.0, 2.0), 3)
        if rng.random() < 0.8:
            words = rng.sample(STRING_WORDS, rng.randint(1, 3))
            row["text"] = " ".join(words)
        if rng.random() < 0.5:
            row["tag"] = rng.choice(("red", "green", "blue"))
        rows.append(row)
    return rows


def split_datum(row: dict[str, object]) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
    strings = [(k, v) for k, v in row.items() if isinstance(v, str)]
    numbers = [(k, float(v)) for k, v in row.items() if isinstance(v, int | float)]
    return strings, numbers


def split_row(row: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """A row's keys in two halves (the first update_row sends one, the second the other)."""
    keys = list(row)
    half = len(keys) // 2
    return {k: row[k] for k in keys[:half]}, {k: row[k] for k in keys[half:]}
