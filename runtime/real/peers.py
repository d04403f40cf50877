"""The other node processes of a multi-node cluster: core messages routed to them over authenticated channels.

A node process's ``components`` table maps the addresses of its own core components to
themselves; with a `Peers`, every other address resolves (`RoutingTable.__missing__`) to a
`RemotePeer` that writes the message as one frame onto the `Link` (a `runtime.net`
Channel) of the node process hosting it. The `Effects.send` effect is unchanged: a
``Send`` is ``components[dst].handle(msg, now, out)`` whether ``dst`` is local or not, so
the embedded single node (no `Peers`) pays nothing.

The topology is a star: a worker node process has one link, to the head; the head has one
per worker node and forwards frames for a third node (its own table routes them on), so a
worker node needs no address of any other node. Frames on a link:

* ``(CORE, dst, msg)``: deliver core message ``msg`` to the component at ``dst``;
* ``(FUNCTION, fn_id, pickled)``: a remote function's pickle, sent once per link before
  the first spec that names it (function ids are unique in the cluster: see
  `runtime.real.addresses.FN_ID_BASE`);
* ``(WELCOME, node_index)``: head -> joining node, once, before anything else;
* ``(OBJECTS, node_index, address)``: node -> head, where its object server listens;
* ``(SERVERS, {node_index: address})``: head -> every node, every object server known.

When a worker node's link closes (the node stopped or crashed) the head tells its GCS
(`NodeDied`), which is the core's own recovery path; a node that stops sending heartbeats
without closing it (a frozen process, a vanished machine) is declared dead by the GCS's
failure detector, whose ``FenceNode`` the head carries out by closing that link
(`fence`); when a worker node loses the head it stops (`lost_head`). See docs/design.md, "Multi-node real mode".
"""

from __future__ import annotations

import contextlib
import logging
import selectors
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.core.messages import NodeAdded, NodeDied

__all__ = [
    "CORE",
    "FUNCTION",
    "WELCOME",
    "FencedError",
    "JoinError",
    "Link",
    "Peers",
    "RemotePeer",
    "RoutingTable",
    "await_welcome",
]

log = logging.getLogger("runtime")

CORE = 1
FUNCTION = 2
WELCOME = 3
OBJECTS = 4
SERVERS = 5
FENCED = 6
"""Head -> a node rejoining after this head declared it dead, instead of a welcome."""
HEAD_NODE = 0


class JoinError(ConnectionError):
    """A node process could not join the head (closed or answered something else)."""


class FencedError(JoinError):
    """The head refused this node for good: it declared it dead (the node stops)."""


class RoutingTable(dict):
    """A node's ``components``: its own components, and a `RemotePeer` for any other address."""

    __slots__ = ("route",)

    def __init__(self, local: dict[int, Any], route: Callable[[int], Any]) -> None:
        super().__init__(local)
        self.route = route

    def __missing__(self, addr: int) -> Any:
        return self.route(addr)


class RemotePeer:
    """The core component at ``dst`` in another node process, as a component: `handle` sends."""

    __slots__ = ("link", "dst")

    def __init__(self, link: Link, dst: int) -> None:
        self.link = link
        self.dst = dst

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Send ``msg`` to the component over the link."""
        self.link.send_core(self.dst, msg)


class _Dropped:
    """A component on a node that is gone: messages to it are dropped (as the simulator's)."""

    __slots__ = ("addr",)

    def __init__(self, addr: int) -> None:
        self.addr = addr

    def handle(self, msg: Any, now: float, out: list[Any]) -> None:
        """Drop ``msg``."""
        log.debug("twinray: dropped %s for %d (its node is gone)", type(msg).__name__, self.addr)


@dataclass(eq=False)
class Link:
    """The channel to one other node process."""

    peers: Peers
    channel: Any
    node: int
    """The node index of the process at the other end."""
    sent_functions: set[int] = field(default_factory=set)
    registered: bool = False
    waiting_write: bool = False

    def send_core(self, dst: int, msg: Any) -> None:
        """Send core message ``msg`` for ``dst`` (with the pickles of functions it names first)."""
        frames: list[Any] = []
        spec = getattr(msg, "spec", None)
        if spec is not None:
            fn = spec.function
            if type(fn) is int and fn not in self.sent_functions:
                pickled = self.peers.functions.get(fn)
                if pickled is not None:
                    frames.append((FUNCTION, fn, pickled))
                    self.sent_functions.add(fn)
        frames.append((CORE, dst, msg))
        self.send_frames(frames)

    def send_frames(self, frames: list[Any]) -> None:
        """Write ``frames``; what does not fit waits for the socket to be writable."""
        if self.channel.closed:
            return
        try:
            done = self.channel.send_many(frames)
        except OSError:
            return  # the EOF on read reports the loss
        if not done and self.registered and not self.waiting_write:
            self.waiting_write = True
            self.peers.sel.modify(
                self.channel, selectors.EVENT_READ | selectors.EVENT_WRITE, (self.peers.on_io, self)
            )


class Peers:
    """The links of one node process to the rest of its cluster (loop thread only)."""

    def __init__(self, head: bool) -> None:
        # imported here: a joining node learns its index (which fixes the module's values)
        # from the head's welcome, after this module is loaded
        from runtime.real.addresses import NODE_STRIDE

        self.stride = NODE_STRIDE
        self.head = head
        """True in the head process (it hosts the GCS and the global scheduler)."""
        self.links: dict[int, Link] = {}
        """Node index -> its link (a worker node: the head's only)."""
        self.next_index = 1
        """The head: the index the next joining node gets."""
        self.node: Any = None
        self.sel: Any = None
        self.functions: dict[int, bytes] = {}
        """The node's pickled functions by id (its pool's table, after `attach`)."""
        self.lost_head = False
        """A worker node: its link to the head closed (the node process stops)."""
        self.joined: list[int] = []
        """The head: the index of every node that joined, in order."""
        self.object_servers: dict[int, str] = {}
        """Node index -> its object server's "host:port" (`runtime.real.transfers`)."""
        self.registered = False
        """A worker node: the GCS told it of a node (its answer to the raylet's subscription,
        sent after its registration): the head knows this node."""
        self.frame_handlers: dict[int, Callable[[Link, tuple, float], None]] = {}
        """Frame tag -> handler ``(link, frame, now)`` of frames other parts define
        (`runtime.real.logs`' ``LOGS``)."""
        self.mail: Any = None
        """A worker node: the results it sent to owners on the head, sent again when it
        rejoins a restarted head (`runtime.real.owner_mail.HeadOwnerMail`)."""
        self.park: Any = None
        """A restarted head: owner address -> the stand-in keeping its messages until its
        driver is back, or None (`runtime.real.driver_resume`); None: nothing is kept."""
        self.gcs_setup: Callable[[Any], None] | None = None
        """The head: called with the node before its components start (persistence and
        restore: `runtime.real.head_restart.HeadState.setup`)."""

    # -- routing -------------------------------------------------------------------------

    def routing_table(self, local: dict[int, Any]) -> RoutingTable:
        """The node's ``components``: ``local`` and, for any other address, its remote peer."""
        return RoutingTable(local, self.route)

    def route(self, addr: int) -> Any:
        """The component at ``addr`` in another process (not cached: nodes come and go)."""
        link = self.links.get(HEAD_NODE if not self.head else addr // self.stride)
        if link is None:
            if self.park is not None:  # a restarted head: kept for who comes back
                parked = self.park(addr)
                if parked is not None:
                    return parked
            absent = self.mail.absent(addr) if self.mail is not None else None
            return absent if absent is not None else _Dropped(addr)
        if self.mail is not None:
            return self.mail.peer(link, addr, RemotePeer(link, addr))
        return RemotePeer(link, addr)

    # -- links ---------------------------------------------------------------------------

    def add_link(self, channel: Any, node: int) -> Link:
        """A link to node ``node`` over ``channel`` (served by the loop once attached)."""
        link = Link(self, channel, node)
        self.links[node] = link
        if self.sel is not None:
            self._register(link)
        return link

    def attach(self, node: Any) -> None:
        """Serve the links on ``node``'s loop (call once the node is built, holding its core lock)."""
        self.node = node
        self.sel = node._sel
        self.functions = node.pool.functions
        for link in self.links.values():
            self._register(link)

    def _register(self, link: Link) -> None:
        link.channel.setblocking(False)
        self.sel.register(link.channel, selectors.EVENT_READ, (self.on_io, link))
        link.registered = True
        if link.channel.has_pending_output:
            link.send_frames([])

    def op_rejoin(self, arg: tuple[Any, int], now: float) -> None:
        """The head's loop thread: a node that knew a previous head comes back as node
        ``index`` (refused when that index has a live link, or is the head's)."""
        channel, index = arg
        if index <= HEAD_NODE or index in self.links:
            log.warning("twinray: refusing a node rejoining as node %d (taken)", index)
            channel.close()
            return
        if self._fenced(channel, index):
            return
        self.next_index = max(self.next_index, index + 1)
        self._welcome(channel, index)

    def _fenced(self, channel: Any, index: int) -> bool:
        """Refuse node ``index`` for good if this head's GCS holds it dead (declared by the
        failure detector, or its link closed): it is told why (a ``FENCED`` frame, so it
        stops at once) and the channel closed. A restarted head's nodes that were alive
        wait in the GCS's ``rejoining``, not in its node table, and are let back in."""
        info = self.node.gcs.node_table().get(index)
        if info is None or info.alive:
            return False
        reason = f"node {index} was declared dead by the head; it is fenced"
        log.warning("twinray: refusing a node rejoining as node %d: %s", index, reason)
        with contextlib.suppress(OSError):
            channel.send((FENCED, reason))
        channel.close()
        return True

    def op_relink(self, arg: tuple[Any, dict[int, str]], now: float) -> None:
        """A worker node's loop thread: the head is back on ``channel`` (a restarted head):
        serve the link, announce the object server, register the raylet again and list
        every object stored here (the restored GCS re-learns where they are)."""
        from runtime.core.messages import ObjectAdded, RegisterNode, Subscribe
        from runtime.real.addresses import GCS_ADDR

        channel, servers = arg
        raylet = self.node.raylet
        mine = self.object_servers.get(raylet.node)
        self.object_servers = dict(servers)
        self.registered = False
        self.add_link(channel, HEAD_NODE)
        self.lost_head = False
        if self.mail is not None:  # results for owners on the head first, then what
            self.mail.resend(self.links[HEAD_NODE], raylet)  # the raylet holds of theirs
        gcs = self.node.components[GCS_ADDR]
        out = self.node._out
        usage = raylet.store_usage()
        gcs.handle(
            RegisterNode(raylet.node, raylet.addr, raylet.total_resources(), usage.capacity),
            now,
            out,
        )
        gcs.handle(Subscribe(raylet.addr), now, out)
        for oid, entry in raylet.stored_objects().items():
            gcs.handle(ObjectAdded(oid, raylet.node, entry.size, -1, True), now, out)
        if mine is not None:
            self.announce_objects(raylet.node, mine)

    def op_join(self, channel: Any, now: float) -> None:
        """The head's loop thread: a node process joins; give it its index, serve its link."""
        index = self.next_index
        self.next_index += 1
        self._welcome(channel, index)

    def _welcome(self, channel: Any, index: int) -> None:
        try:
            channel.send((WELCOME, index))
        except OSError:
            channel.close()
            return
        self.joined.append(index)
        link = self.add_link(channel, index)
        link.send_frames([(SERVERS, dict(self.object_servers))])

    def on_io(self, link: Link, mask: int, now: float) -> None:
        """Selector callback: flush what waited, deliver the link's frames."""
        channel = link.channel
        if mask & selectors.EVENT_WRITE and channel.flush():
            link.waiting_write = False
            self.sel.modify(channel, selectors.EVENT_READ, (self.on_io, link))
        if not mask & selectors.EVENT_READ:
            return
        try:
            frames = channel.recv_many()
        except (EOFError, OSError):
            self._lost(link, now)
            return
        components = self.node.components
        out = self.node._out
        functions = self.functions
        for frame in frames:
            tag = frame[0]
            if tag == CORE:
                components[frame[1]].handle(frame[2], now, out)
                if not self.registered and type(frame[2]) is NodeAdded:
                    self.registered = True
            elif tag == FUNCTION:
                functions.setdefault(frame[1], frame[2])
            elif tag == OBJECTS and self.head:
                self.object_servers[int(frame[1])] = str(frame[2])
                self._tell_servers()
            elif tag == SERVERS and not self.head:
                self.object_servers = {int(k): str(v) for k, v in frame[1].items()}
            elif tag in self.frame_handlers:
                self.frame_handlers[tag](link, frame, now)
            else:
                log.warning("twinray: unexpected frame %.100r from node %d", frame, link.node)

    def announce_objects(self, node: int, address: str) -> None:
        """Loop thread: this node's object server listens at ``address``: tell the cluster."""
        self.object_servers[node] = address
        if self.head:
            self._tell_servers()
        else:
            link = self.links.get(HEAD_NODE)
            if link is not None:
                link.send_frames([(OBJECTS, node, address)])

    def _tell_servers(self) -> None:
        """The head: send every node the table of object servers."""
        frame = (SERVERS, dict(self.object_servers))
        for link in self.links.values():
            link.send_frames([frame])

    def _lost(self, link: Link, now: float) -> None:
        """A link closed: the other node process is gone."""
        if self.links.get(link.node) is link:
            del self.links[link.node]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.node.loop.unregister_io(link.channel)
        link.channel.close()
        if self.head:
            log.info("twinray: node %d left the cluster", link.node)
            if self.object_servers.pop(link.node, None) is not None:
                self._tell_servers()
            self.node.gcs.handle(NodeDied(link.node), now, self.node._out)
        else:
            self.lost_head = True

    def fence(self, cmd: Any, now: float) -> None:
        """The head's GCS declared node ``cmd.node`` dead (``FenceNode``): close its link,
        so nothing it sends is heard again and, when it runs again, it finds the head gone
        and stops (Ray's raylet exits when told it was marked dead); the closed link
        reports ``NodeDied`` to the GCS, as a crash's does."""
        link = self.links.get(cmd.node)
        if link is None:
            log.warning("twinray: %s (no link to it left)", cmd.reason)
            return
        log.warning("twinray: %s: its link is closed", cmd.reason)
        self._lost(link, now)

    def close(self) -> None:
        """Close every link (after the node's loop stopped)."""
        for link in list(self.links.values()):
            link.channel.close()
        self.links.clear()


def _is_fence(frame: Any) -> bool:
    return type(frame) is tuple and len(frame) == 2 and frame[0] == FENCED


def await_welcome(channel: Any) -> tuple[int, dict[int, str]]:
    """A joining node process: read the head's welcome (blocking); return its node index
    and the object servers the head knows (the frame that follows the welcome)."""
    frames: list[Any] = []
    while len(frames) < 2 and not (frames and _is_fence(frames[0])):
        try:
            frames += channel.recv_many()
        except (EOFError, OSError) as exc:
            raise JoinError(f"the head closed the connection before welcoming: {exc}") from None
    if _is_fence(frames[0]):
        raise FencedError(str(frames[0][1]))
    welcome, servers = frames[0], frames[1]
    if len(frames) != 2 or type(welcome) is not tuple or welcome[:1] != (WELCOME,):
        raise JoinError(f"the head did not welcome this node: {welcome!r:.200}")
    if type(servers) is not tuple or servers[:1] != (SERVERS,):
        raise JoinError(f"the head's welcome is not followed by its servers: {servers!r:.200}")
    return int(welcome[1]), {int(k): str(v) for k, v in servers[1].items()}
