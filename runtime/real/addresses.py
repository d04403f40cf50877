"""Addresses of the in-process core components of a node process (the head's, or a worker node's).

The head (and the embedded single-node host) is node 0 and keeps the layout of
`runtime.core.cluster`: GCS 0, global scheduler 1, raylet 2, driver owner 3, host timers 4,
a worker's owner at ``WORKER_OWNER_BASE + worker_id``. A worker node process is told its
node index by the head when it joins and runs with ``TWINRAY_NODE_INDEX`` set (before this
module is first imported, so that its workers see it too): its addresses are node 0's
shifted by ``index * NODE_STRIDE``, its owner indexes (task and object ids carry them) by
``index << OWNER_INDEX_BITS`` and its function ids by ``index << FN_ID_SHIFT``, so nothing
collides across the cluster. Without the variable every value is the single node's.
"""

from __future__ import annotations

import os

from runtime.core.cluster import GCS_ADDR, GS_ADDR, AddressMap

__all__ = [
    "FN_ID_BASE",
    "GCS_ADDR",
    "GS_ADDR",
    "HOST_ADDR",
    "NODE_ID",
    "NODE_INDEX_VAR",
    "NODE_STRIDE",
    "OWNER_ADDR",
    "OWNER_INDEX_BASE",
    "RAYLET_ADDR",
    "WORKER_OWNER_BASE",
    "node_of_address",
    "owner_address",
]

NODE_INDEX_VAR = "TWINRAY_NODE_INDEX"
"""The environment variable a worker node process (and its workers) runs with."""
NODE_STRIDE = 1 << 32
"""Addresses of node ``n`` lie in ``[n * NODE_STRIDE, (n + 1) * NODE_STRIDE)`` (node 0 also
holds the cluster's GCS and global scheduler)."""
OWNER_INDEX_BITS = 14
"""Owner indexes of node ``n`` are ``n << OWNER_INDEX_BITS`` plus the local index."""
FN_ID_SHIFT = 32
"""Function ids registered on node ``n`` start above ``n << FN_ID_SHIFT``."""


def _node_index() -> int:
    raw = os.environ.get(NODE_INDEX_VAR, "0")
    try:
        index = int(raw)
    except ValueError:
        raise ValueError(f"{NODE_INDEX_VAR}={raw!r}: must be a node index (an int)") from None
    if not 0 <= index < 1 << (24 - OWNER_INDEX_BITS):
        raise ValueError(f"{NODE_INDEX_VAR}={raw!r}: out of range")
    return index


NODE_ID = _node_index()
"""This node's id (0: the head, or the embedded single node)."""
_BASE = NODE_ID * NODE_STRIDE
_MAP = AddressMap(nodes=1, drivers=1)
RAYLET_ADDR = _BASE + _MAP.raylet(0)
"""The node's raylet (``runtime.core.cluster`` lays the addresses out: GCS 0, GS 1, raylet 2)."""
OWNER_ADDR = _BASE + _MAP.owner(0)
"""The driver's owner (on a worker node: the node's own, used by no program)."""
HOST_ADDR = _BASE + _MAP.first_free
"""The host's own timers (not a core component)."""
_LOCAL_WORKER_OWNER_BASE = 100
WORKER_OWNER_BASE = _BASE + _LOCAL_WORKER_OWNER_BASE
"""A worker's owner lives at ``WORKER_OWNER_BASE + worker_id`` (owner index worker_id + 1)."""
OWNER_INDEX_BASE = NODE_ID << OWNER_INDEX_BITS
"""The owner index of this node's driver owner; a worker's is ``OWNER_INDEX_BASE + worker_id + 1``."""
FN_ID_BASE = NODE_ID << FN_ID_SHIFT
"""Function ids registered on this node are above this."""


def node_of_address(addr: int) -> int:
    """The node hosting the component at ``addr`` (GCS and global scheduler: node 0)."""
    return addr // NODE_STRIDE


def owner_address(index: int) -> int:
    """The address of the owner with owner index ``index`` (on whichever node)."""
    node, local = divmod(index, 1 << OWNER_INDEX_BITS)
    base = node * NODE_STRIDE
    return base + (_MAP.owner(0) if local == 0 else _LOCAL_WORKER_OWNER_BASE + local - 1)
