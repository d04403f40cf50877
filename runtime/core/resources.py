"""Resource requests and capacities as small str -> float dicts, and their arithmetic."""

from __future__ import annotations

Resources = dict[str, float]
"""A resource vector, e.g. ``{"CPU": 1.0, "GPU": 0.5, "accelerator_x": 1.0}``."""

ShapeKey = tuple[tuple[str, float], ...]

EPS = 1e-9


def shape_key(demand: Resources) -> ShapeKey:
    """A hashable, order-independent key for a resource demand (zero entries dropped)."""
    return tuple(sorted((k, v) for k, v in demand.items() if v > 0))


def fits(demand: Resources, available: Resources) -> bool:
    """True when every positive entry of ``demand`` is covered by ``available``."""
    for name, amount in demand.items():
        if amount > 0 and available.get(name, 0.0) + EPS < amount:
            return False
    return True


def acquire(available: Resources, demand: Resources) -> None:
    """Subtract ``demand`` from ``available`` in place (caller checked ``fits``)."""
    for name, amount in demand.items():
        if amount:
            available[name] = available.get(name, 0.0) - amount


def release(available: Resources, demand: Resources) -> None:
    """Give ``demand`` back to ``available`` in place."""
    for name, amount in demand.items():
        if amount:
            available[name] = available.get(name, 0.0) + amount


def missing(demand: Resources, total: Resources) -> Resources:
    """The part of ``demand`` that ``total`` can never cover (empty when feasible)."""
    return {
        name: amount
        for name, amount in demand.items()
        if amount > 0 and total.get(name, 0.0) + EPS < amount
    }


def describe(res: Resources) -> str:
    """A stable, readable rendering such as ``{CPU: 2, GPU: 1}``."""
    inner = ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items()))
    return "{" + inner + "}"
