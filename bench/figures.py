"""A measured figure with its target, and the table that shows them all."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from bench.common import median

HEADER = ("#", "figure", "min", "median", "max", "unit", "target", "verdict", "note")


@dataclass(frozen=True)
class Figure:  # pylint: disable=too-many-instance-attributes
    """Repeated measurements of one figure; the verdict is judged on the median.

    ``passed`` is None for figures shown for context, without a target. ``error`` says why
    a figure could not be measured: its verdict is then ``FAILED`` (counted as missed in
    the report) and its values may be NaN, shown as ``—``.
    """

    section: str
    name: str
    values: tuple[float, ...]
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""
    digits: int = 1
    error: str = ""

    @property
    def median(self) -> float:
        """The median of the repeated values."""
        return median(self.values)

    @property
    def verdict(self) -> str:
        """``pass``, ``MISS``, ``FAILED`` (not measured) or empty (no target)."""
        if self.error:
            return "FAILED"
        if self.passed is None:
            return ""
        return "pass" if self.passed else "MISS"

    def row(self) -> tuple[str, ...]:
        """The figure as table cells (see ``HEADER``)."""
        def show(value: float) -> str:
            return f"{value:.{self.digits}f}" if math.isfinite(value) else "—"

        note = "; ".join(part for part in (self.error and f"FAILED: {self.error}", self.note)
                         if part)
        return (self.section, self.name, show(min(self.values)), show(self.median),
                show(max(self.values)), self.unit, self.target, self.verdict,
                f"{note} (n={len(self.values)})" if note else f"n={len(self.values)}")


def text_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table."""
    rows = [HEADER, *(figure.row() for figure in figures)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    numeric = {2, 3, 4}
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if column in numeric else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table."""
    rows = [HEADER, *(figure.row() for figure in figures)]
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(("---:" if column in (2, 3, 4) else "---")
                                   for column in range(len(HEADER))) + "|")
    return "\n".join(lines)
