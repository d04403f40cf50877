"""Addresses of the in-process core components of the single-node host."""

from __future__ import annotations

GCS_ADDR, GS_ADDR, RAYLET_ADDR, OWNER_ADDR = 0, 1, 2, 3
"""The GCS, global scheduler, raylet and the driver's owner."""
HOST_ADDR = 4
"""The host's own timers (not a core component)."""
NODE_ID = 0
"""The one node's id."""
WORKER_OWNER_BASE = 100
"""A worker's owner lives at ``WORKER_OWNER_BASE + worker_id`` (owner index worker_id + 1)."""
