"""Markdown tables and the way figures are written in REPORT.md."""

from __future__ import annotations

import math


def number(value: float, digits: int = 1) -> str:
    """A figure with thousands separators; – when missing, ∞ when something never arrived."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞ (not delivered)"
    return f"{value:,.{digits}f}"


def times(value: float) -> str:
    """A ratio such as 3.20×."""
    return "–" if value is None or math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.2f}×")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |"
                                                                         for row in rows]


def percent(change: float) -> str:
    """A change in percent."""
    return number(change) if math.isinf(change) else f"{number(change)} %"


def verdict(met: bool | None) -> str:
    """met, **not met**, or – when there is nothing to judge."""
    return "–" if met is None else ("met" if met else "**not met**")
