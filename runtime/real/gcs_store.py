"""The head's GCS tables on disk: `Persist` commands written to SQLite (WAL mode) in the session directory, read back at a restart.

The head's loop thread carries out each `Persist` by noting the row as dirty (a dict
write); once per loop iteration (an op queued by the first dirty row) it pickles the dirty
rows' current values and hands them to a writer thread, which commits each batch in one
transaction. So the hot path pays a dict write per durable change, the pickling is batched
and the disk is never touched on the loop thread. A restarted head reads every row back
(`load`) and gives them to `Gcs.restore`. Besides the GCS's tables the store keeps the
host's own ``meta`` rows: the counters a restarted head must continue past (worker ids,
whose owner indexes are carried by object and task ids, and function ids, cached by the
nodes that survived), and the ``jobs`` table (every driver that connected).
"""

from __future__ import annotations

import logging
import pickle
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DB_NAME", "GcsStore", "GcsStoreError"]

log = logging.getLogger("runtime")

DB_NAME = "gcs.sqlite3"
"""The store's file in the session directory."""
META = "meta"
JOBS = "jobs"
FUNCTIONS = "functions"
CLASS_META = "class_meta"
HOST_TABLES = (META, JOBS, FUNCTIONS, CLASS_META)
"""The host's own tables (not the GCS's): counters, drivers, pickled functions by id,
actor classes' names and methods by function id."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    tbl TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID
"""


class GcsStoreError(RuntimeError):
    """The session's GCS store cannot be opened or read (corrupt, or not a twinray store)."""


class GcsStore:
    """One head's store: ``session/gcs.sqlite3``; rows written on a thread of its own."""

    def __init__(self, session: Path | str) -> None:
        self.path = Path(session) / DB_NAME
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never torn
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise GcsStoreError(f"cannot open the GCS store {self.path}: {exc}") from None
        self._db = db
        self._dirty: dict[tuple[str, Any], Any] = {}
        self._queued = False
        self._schedule: Callable[[], None] | None = None
        self._batches: queue.SimpleQueue[list[tuple[str, bytes, bytes | None]] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._write_loop, name="twinray-gcs-store")
        self._writer.daemon = True
        self._writer.start()
        self.written = 0
        """Rows committed so far (the writer thread's count)."""
        self.error: BaseException | None = None
        """Why the writer stopped, if it failed."""
        self.unpicklable = 0
        """Rows that could not be pickled (logged; not persisted)."""

    # -- reading (at start) ----------------------------------------------------------------

    def load(self) -> tuple[list[tuple[str, Any, Any]], dict[str, dict[Any, Any]]]:
        """Every GCS row ``(table, key, value)``, and the host's tables (``meta``,
        ``jobs``, ``functions``) as dicts by table."""
        try:
            found = self._db.execute("SELECT tbl, key, value FROM rows").fetchall()
        except sqlite3.Error as exc:
            raise GcsStoreError(f"cannot read the GCS store {self.path}: {exc}") from None
        rows: list[tuple[str, Any, Any]] = []
        host: dict[str, dict[Any, Any]] = {t: {} for t in HOST_TABLES}
        for tbl, key, val in found:
            try:
                k, v = pickle.loads(key), pickle.loads(val)
            except Exception as exc:
                raise GcsStoreError(
                    f"{self.path}: a row of {tbl!r} cannot be read: {exc}"
                ) from None
            if tbl in host:
                host[tbl][k] = v
            else:
                rows.append((tbl, k, v))
        return rows, host

    def jobs(self) -> dict[str, Any]:
        """The jobs table: driver id -> what the head recorded of it."""
        found = self._db.execute("SELECT key, value FROM rows WHERE tbl = ?", (JOBS,))
        return {pickle.loads(k): pickle.loads(v) for k, v in found.fetchall()}

    # -- writing (the head's loop thread) --------------------------------------------------

    def bind(self, schedule: Callable[[], None]) -> None:
        """``schedule()`` makes `flush` run once on the loop thread (an op, next iteration)."""
        self._schedule = schedule

    def persist(self, cmd: Any, now: float) -> None:
        """The `Persist` effect: row ``(cmd.table, cmd.key)`` changed; written with the batch."""
        self._dirty[(cmd.table, cmd.key)] = cmd.value
        if not self._queued and self._schedule is not None:
            self._queued = True
            self._schedule()

    def put(self, table: str, key: Any, value: Any) -> None:
        """A host row (``meta``, ``jobs``): written with the next batch."""
        self.persist(_Row(table, key, value), 0.0)

    def flush(self, _arg: Any = None, _now: float = 0.0) -> None:
        """Loop thread: pickle the dirty rows' values now and queue them for the writer."""
        self._queued = False
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        dumps = pickle.dumps
        batch: list[tuple[str, bytes, bytes | None]] = []
        for (t, k), v in dirty.items():
            try:
                batch.append((t, dumps(k), None if v is None else dumps(v, protocol=5)))
            except Exception as exc:  # a row that cannot be pickled must not stop the loop
                self.unpicklable += 1
                log.warning("twinray: GCS row %s[%r] not persisted: %r", t, k, exc)
        self._batches.put(batch)

    def _write_loop(self) -> None:
        """Writer thread: commit each batch in one transaction until `close`."""
        db = self._db
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            try:
                db.execute("BEGIN")
                for tbl, key, val in batch:
                    if val is None:
                        db.execute("DELETE FROM rows WHERE tbl = ? AND key = ?", (tbl, key))
                    else:
                        db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", (tbl, key, val))
                db.execute("COMMIT")
                self.written += len(batch)
            except sqlite3.Error as exc:
                self.error = exc
                return

    def close(self) -> None:
        """Write what is queued (call after the loop stopped: `flush` first) and close."""
        self.flush()
        self._batches.put(None)
        self._writer.join(timeout=30.0)
        self._db.close()


class _Row:
    """A host row in the shape of a `Persist` command."""

    __slots__ = ("table", "key", "value")

    def __init__(self, table: str, key: Any, value: Any) -> None:
        self.table, self.key, self.value = table, key, value
