"""Resource requests and capacities as small str -> float dicts, and their arithmetic."""

from __future__ import annotations

from typing import Final

Resources = dict[str, float]
"""A resource vector, e.g. ``{"CPU": 1.0, "GPU": 0.5, "accelerator_x": 1.0}``."""

ShapeKey = tuple[tuple[str, float], ...]

EPS: Final = 1e-9


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


UNIT_INSTANCE_RESOURCES: Final = ("GPU",)
"""Resources made of numbered instances (as in Ray): a task is given specific instance ids."""


def unit_instances(total: Resources) -> dict[str, list[float]]:
    """The free capacity of each instance of the unit-instance resources in ``total``.

    ``{"GPU": 2}`` gives ``{"GPU": [1.0, 1.0]}``; a fractional total adds a last, partial
    instance (``1.5`` -> ``[1.0, 0.5]``).
    """
    out: dict[str, list[float]] = {}
    for name in UNIT_INSTANCE_RESOURCES:
        amount = total.get(name, 0.0)
        if amount > EPS:
            whole = int(amount + EPS)
            caps = [1.0] * whole
            if amount - whole > EPS:
                caps.append(amount - whole)
            out[name] = caps
    return out


def pick_instances(free: list[float], amount: float) -> tuple[int, ...] | None:
    """Instance ids that can give ``amount`` now (None: none can), Ray's rule.

    A fraction below one comes from one instance (the first with room, so fractional
    requests pack onto instance 0 first); a larger amount takes that many whole, unused
    instances, lowest ids first.
    """
    if amount < 1.0 - EPS:
        for i, left in enumerate(free):
            if left + EPS >= amount:
                return (i,)
        return None
    need = int(amount - EPS) + 1 if amount - int(amount + EPS) > EPS else int(amount + EPS)
    ids = tuple(i for i, left in enumerate(free) if left > 1.0 - EPS)[:need]
    return ids if len(ids) == need else None


def take_instances(free: list[float], ids: tuple[int, ...], amount: float) -> None:
    """Charge ``amount`` to the instances ``ids`` (from ``pick_instances``)."""
    if len(ids) == 1 and amount < 1.0 - EPS:
        free[ids[0]] -= amount
        return
    for i in ids:
        free[i] -= 1.0


def give_instances(free: list[float], ids: tuple[int, ...], amount: float) -> None:
    """Give back what ``take_instances`` charged."""
    if len(ids) == 1 and amount < 1.0 - EPS:
        free[ids[0]] += amount
        return
    for i in ids:
        free[i] += 1.0
