"""Addresses of the in-process core components of the single-node host."""

from __future__ import annotations

from runtime.core.cluster import GCS_ADDR, GS_ADDR, AddressMap

__all__ = [
    "GCS_ADDR",
    "GS_ADDR",
    "HOST_ADDR",
    "NODE_ID",
    "OWNER_ADDR",
    "RAYLET_ADDR",
    "WORKER_OWNER_BASE",
]

NODE_ID = 0
"""The one node's id."""
_MAP = AddressMap(nodes=1, drivers=1)
RAYLET_ADDR = _MAP.raylet(NODE_ID)
"""The node's raylet (``runtime.core.cluster`` lays the addresses out: GCS 0, GS 1, raylet 2)."""
OWNER_ADDR = _MAP.owner(0)
"""The driver's owner."""
HOST_ADDR = _MAP.first_free
"""The host's own timers (not a core component)."""
WORKER_OWNER_BASE = 100
"""A worker's owner lives at ``WORKER_OWNER_BASE + worker_id`` (owner index worker_id + 1)."""
