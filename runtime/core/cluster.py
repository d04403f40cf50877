"""The one wiring of the control plane: the address map and a builder for GCS, global scheduler, raylets and owners.

Every host (the simulator, the real node and the tests' fake host) builds its components
here, so that what talks to what, and at which address, is written once. A host then
registers the components with its own transport (a SimPy process per component, direct
calls on the event-loop thread, or a heap of deliveries) and starts them; it does not
construct core components itself.

The address layout: the GCS at 0, the global scheduler at 1, then one raylet per node, one
owner per driver, and the extra GCS shards; ``AddressMap.first_free`` is the first address
a host may use for itself. Bases are settable so a host can keep a layout of its own (the
fake host numbers raylets from 100 and owners from 1000 so that test output reads well).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime.core.config import CoreConfig
from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.ids import Address, NodeId
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from runtime.core.resources import Resources
from runtime.core.rng import Rng

GCS_ADDR: Address = 0
"""The GCS (its first shard) listens here in every host."""
GS_ADDR: Address = 1
"""The global scheduler listens here in every host."""


@dataclass(frozen=True, slots=True)
class AddressMap:
    """Where each core component of a cluster listens."""

    nodes: int
    """Raylets: one per node, nodes ``0 .. nodes-1``."""
    drivers: int
    """Driver owners: driver ``d`` lives on node ``d`` unless the builder is told otherwise."""
    gcs_shards: int = 1
    """GCS shards, the first at ``GCS_ADDR`` and the others after the owners."""
    raylet_base: Address = 2
    """The raylet of node ``n`` listens at ``raylet_base + n``."""
    owner_base: Address | None = None
    """The owner of driver ``d`` listens at ``owner_base + d`` (default: after the raylets)."""

    def raylet(self, node: NodeId) -> Address:
        """The address of node ``node``'s raylet."""
        return self.raylet_base + node

    def owner(self, driver: int) -> Address:
        """The address of driver ``driver``'s owner."""
        base = self.raylet_base + self.nodes if self.owner_base is None else self.owner_base
        return base + driver

    def shard(self, index: int) -> Address:
        """The address of GCS shard ``index`` (shard 0 is the GCS itself)."""
        return GCS_ADDR if index == 0 else self.owner(self.drivers) + index - 1

    @property
    def first_free(self) -> Address:
        """The first address no core component uses (hosts put their own endpoints here)."""
        return self.owner(self.drivers) + self.gcs_shards - 1


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """What one node offers: its resources and its object store's size in bytes."""

    resources: Resources
    store_bytes: int


@dataclass(slots=True)
class ControlPlane:
    """The built components of one cluster, by role, and the map of their addresses."""

    addresses: AddressMap
    config: CoreConfig
    gcs: Gcs
    """The GCS (shard 0)."""
    global_scheduler: GlobalScheduler
    raylets: list[Raylet]
    """Indexed by node id (less ``first_node``: a worker node process builds only its own)."""
    owners: list[Owner]
    """Indexed by driver."""
    shards: list[Gcs] = field(default_factory=list)
    """All GCS shards, ``shards[0] is gcs``."""

    def components(self) -> dict[Address, Gcs | GlobalScheduler | Raylet | Owner]:
        """Every component by its address (GCS shards, global scheduler, raylets, owners)."""
        table: dict[Address, Gcs | GlobalScheduler | Raylet | Owner] = {}
        for gcs in self.shards:
            table[gcs.addr] = gcs
        table[self.global_scheduler.addr] = self.global_scheduler
        for raylet in self.raylets:
            table[raylet.addr] = raylet
        for owner in self.owners:
            table[owner.addr] = owner
        return table

    def new_raylet(self, node: NodeId, capacity: NodeCapacity) -> Raylet:
        """A fresh raylet for ``node`` (a restarted node), at the node's usual address."""
        return Raylet(
            node,
            self.addresses.raylet(node),
            GCS_ADDR,
            GS_ADDR,
            capacity.resources,
            capacity.store_bytes,
            self.config,
        )

    def new_owner(self, addr: Address, node: NodeId, owner_index: int) -> Owner:
        """An extra owner (a worker's nested owner) at ``addr`` on ``node``.

        ``owner_index`` must be unique in the cluster: task and object ids carry it.
        """
        return Owner(addr, node, owner_index, self.addresses.raylet(node), GCS_ADDR, self.config)


def build_control_plane(
    config: CoreConfig,
    rng: Rng,
    capacities: Sequence[NodeCapacity],
    drivers: int,
    *,
    gcs_shards: int = 1,
    raylet_base: Address = 2,
    owner_base: Address | None = None,
    first_node: NodeId = 0,
    owner_index_base: int = 0,
) -> ControlPlane:
    """Build GCS (and shards), global scheduler, one raylet per node and one owner per driver.

    Driver ``d`` lives on node ``first_node + d`` and gets owner index ``owner_index_base +
    d``; the raylets are those of nodes ``first_node ..`` (a worker node process of a
    multi-node cluster builds its own node only, with its own address range and owner
    indexes); ``rng`` is the global scheduler's injected randomness. Nothing is started: the
    host registers the components with its transport, then calls their ``start``.
    """
    if drivers > len(capacities):
        raise ValueError(f"{drivers} drivers need at least as many nodes, got {len(capacities)}")
    if gcs_shards < 1:
        raise ValueError(f"gcs_shards must be at least 1, got {gcs_shards}")
    addresses = AddressMap(len(capacities), drivers, gcs_shards, raylet_base, owner_base)
    gcs = Gcs(GCS_ADDR, config, GS_ADDR)
    plane = ControlPlane(
        addresses,
        config,
        gcs,
        GlobalScheduler(GS_ADDR, GCS_ADDR, rng, config),
        raylets=[],
        owners=[],
        shards=[gcs],
    )
    for index in range(1, gcs_shards):
        plane.shards.append(Gcs(addresses.shard(index), config, GS_ADDR))
    for node, capacity in enumerate(capacities, first_node):
        plane.raylets.append(plane.new_raylet(node, capacity))
    for driver in range(drivers):
        node = first_node + driver
        plane.owners.append(
            Owner(
                addresses.owner(driver),
                node,
                owner_index_base + driver,
                addresses.raylet(node),
                GCS_ADDR,
                config,
            )
        )
    return plane
