"""The head can restart: its GCS persisted to the session's store, restored at start, and the nodes it knew given time to come back.

`HeadState` is the head process's side (`runtime.real.node_process.serve`): it opens the
session's `GcsStore`, turns persistence on in the head's GCS before any component starts
(`Peers.gcs_setup`, called by `Node.__init__`), restores the tables when the store holds
some (the head's own node is declared dead at once: its workers and arena did not
survive), continues the counters past the previous head's (worker ids, function ids,
node indexes: object and task ids carry owner indexes, and the surviving nodes cache
function pickles by id), and after the reconnect timeout declares dead every node that
did not come back (`NodeDied`: the core's recovery). `rejoin` is a worker node's side:
reconnect to the head and re-register (same node index, raylet, stored objects).
See docs/design.md, "The head can restart".
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from runtime.core.messages import NodeDied, Persist
from runtime.real.gcs_store import CLASS_META, FUNCTIONS, META, GcsStore

__all__ = ["FN_ID_MARGIN", "WORKER_ID_MARGIN", "HeadState", "rejoin_hello_id", "rejoin_index"]

WORKER_ID_MARGIN = 256
"""Worker ids a restarted head skips past the last one recorded (ids given after the last
write of the counter, at most half a second before the crash)."""
FN_ID_MARGIN = 1 << 20
"""Function ids a restarted head skips past the last one recorded (same reason)."""
META_INTERVAL = 0.5
"""Seconds between writes of the counters when nothing else is persisted."""
_REJOIN = ":rejoin-"


def rejoin_hello_id(pid: int, index: int) -> str:
    """The Hello id of a worker node reconnecting as node ``index``."""
    return f"node-{pid}{_REJOIN}{index}"


def rejoin_index(hello_id: str) -> int | None:
    """The node index a reconnecting node asks for (None: a node joining afresh)."""
    if _REJOIN not in hello_id:
        return None
    try:
        return int(hello_id.rsplit(_REJOIN, 1)[1])
    except ValueError:
        return None


class HeadState:
    """The head's persistence: store, restore at start, counters, and the rejoin grace."""

    def __init__(self, session: Path | str) -> None:
        self.store = GcsStore(session)
        self.rows, host = self.store.load()
        self.meta = host[META]
        self.functions: dict[int, bytes] = host[FUNCTIONS]
        """The previous heads' pickled functions by id (actors' classes, tasks' functions):
        a restored actor restarts, and its handles find its methods, from them."""
        self.class_meta: dict[int, Any] = host[CLASS_META]
        self.restarted = bool(self.rows)
        """The store held tables: this head restarts a previous one."""
        self.node: Any = None
        self.started_at = time.monotonic()
        self.restored_at = -1.0
        """Seconds from this object's creation to the tables restored (-1: not a restart)."""
        self._last: tuple[Any, ...] = ()
        self._nfunctions = -1
        self._fn_high = 0
        self._saved: dict[str, set[int]] = {FUNCTIONS: set(), CLASS_META: set()}
        self._sizes: dict[str, int] = {FUNCTIONS: -1, CLASS_META: -1}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resume: Any = None
        """A restart: the drivers' owners taken back (`runtime.real.driver_resume`)."""

    def previous_port(self) -> int:
        """The port the previous head listened on (0: none recorded)."""
        address = self.meta.get("address")
        return int(str(address).rsplit(":", 1)[1]) if address else 0

    # -- in Node.__init__, before any component starts (loop not running yet) ------------

    def setup(self, node: Any) -> None:
        """Persist the head's GCS from now on; restore it when the store held tables."""
        self.node = node
        store = self.store
        node._effects[Persist] = store.persist
        store.bind(lambda: node._ops.append((self._flush, None)))
        gcs = node.gcs
        gcs.enable_persistence()
        if not self.rows:
            return
        meta = self.meta
        for fn_id, pickled in self.functions.items():
            node.pool.functions.setdefault(fn_id, pickled)
        for fn_id, meta_of in self.class_meta.items():
            node.actor_api.class_meta.setdefault(fn_id, meta_of)
        self._saved = {FUNCTIONS: set(self.functions), CLASS_META: set(self.class_meta)}
        gcs.restore(self.rows, 0.0, node._out, lost_nodes=[node.raylet.node])
        node.pool.next_worker_id = int(meta.get("next_worker_id", 0)) + WORKER_ID_MARGIN
        node.client.fn_ids = itertools.count(int(meta.get("next_fn_id", 0)) + FN_ID_MARGIN)
        known = [n for n, _ in gcs.node_table().items()] + list(gcs.rejoining)
        node.peers.next_index = max([int(meta.get("next_node_index", 1)), *(k + 1 for k in known)])
        from runtime.real.driver_resume import DriverResume

        self.resume = DriverResume(node, node.pool.next_worker_id)  # drivers come back
        self.rows = []
        self.restored_at = time.monotonic() - self.started_at

    def _flush(self, _arg: Any, now: float) -> None:
        """Loop thread: write the counters when they moved, then the batch of rows."""
        node = self.node
        functions = node.pool.functions
        for table, source in ((FUNCTIONS, functions), (CLASS_META, node.actor_api.class_meta)):
            if len(source) == self._sizes[table]:
                continue
            self._sizes[table] = len(source)
            saved = self._saved[table]
            for fn_id in [k for k in source if k not in saved]:
                saved.add(fn_id)
                self.store.put(table, fn_id, source[fn_id])
        if len(functions) != self._nfunctions:
            self._nfunctions = len(functions)
            self._fn_high = max((k for k in functions if k < 1 << 32), default=self._fn_high)
        counters = (node.pool.next_worker_id, self._fn_high, node.peers.next_index)
        if counters != self._last:
            self._last = counters
            for key, val in zip(("next_worker_id", "next_fn_id", "next_node_index"), counters):
                self.store.put(META, key, val)
        self.store.flush()

    # -- once the head listens -------------------------------------------------------------

    def start(self, address: str, grace: float) -> None:
        """Record the address; write the counters every `META_INTERVAL`; after `grace`
        seconds declare dead the restored nodes that did not come back."""
        node = self.node
        self.store.put(META, "address", address)
        deadline = time.monotonic() + grace if self.restarted else None

        def tick() -> None:
            nonlocal deadline
            while not self._stop.wait(META_INTERVAL):
                node._ops.append((self._flush, None))
                if self.resume is not None:
                    node._ops.append((self.resume.tick, None))
                if deadline is not None and time.monotonic() >= deadline:
                    deadline = None
                    node._ops.append((self._expire, None))
                node._wake()

        self._thread = threading.Thread(target=tick, name="twinray-head-state", daemon=True)
        self._thread.start()

    def _expire(self, _arg: Any, now: float) -> None:
        """Loop thread: the nodes that did not rejoin in time are dead (the core recovers)."""
        gcs = self.node.gcs
        for node in sorted(gcs.rejoining):
            gcs.handle(NodeDied(node), now, self.node._out)
        if self.resume is not None:
            self.resume.expire(now)

    def close(self) -> None:
        """Stop the ticks and write what is left (after the node's loop stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.store.close()
