"""Rewriting one ``## Title`` section of bench/RESULTS.md, leaving the others alone."""

from __future__ import annotations

import re

from bench.rpc import RESULTS


def replace_section(title: str, block: str) -> None:
    """Put ``block`` (which starts with ``title``) in place of that section, or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip() + "\n\n" + block
    RESULTS.write_text(text.rstrip("\n") + "\n")
