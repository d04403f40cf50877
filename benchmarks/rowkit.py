"""What a microbenchmark row is: its table entry, its direction, and how a system declines it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HIGHER", "LOWER", "Result", "Row", "Unsupported"]

HIGHER = "higher"  # rate-like: a bigger figure is better
LOWER = "lower"  # time-like: a smaller figure is better

Result = dict[str, tuple[float, str]]  # key -> (value, note)


@dataclass(frozen=True)
class Row:
    """One line of the table: JSON key, label (formatted with the Params), unit, direction."""

    key: str
    label: str
    unit: str
    better: str


class Unsupported(Exception):
    """The system has no equivalent of this row (reported as "n/a")."""
