"""The head's GCS store: Persist rows batched into SQLite (WAL), read back after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runtime.core.gcs import Gcs
from runtime.core.messages import ActorStarted, ObjectAdded, Persist, RegisterActor, RegisterNode
from runtime.core.task import ACTOR_CREATION, TaskSpec
from runtime.real.gcs_store import GcsStore, GcsStoreError


class Ops:
    """Stands for the head's loop: the store's flush op runs when `run` is called."""

    def __init__(self) -> None:
        self.queued: list[Any] = []

    def schedule(self) -> None:
        self.queued.append(1)


def test_rows_survive_a_reopen_and_deletes_win(tmp_path: Path) -> None:
    gcs = Gcs(0, gs_addr=1)
    gcs.enable_persistence()
    out: list[Any] = []
    spec = TaskSpec(1 << 8, 500, 0, kind=ACTOR_CREATION, actor_id=1)
    for msg in (
        RegisterNode(1, 11, {"CPU": 1.0}, 1 << 20),
        RegisterActor(spec, "keeper"),
        ActorStarted(1, 1, 1001),
        ObjectAdded(0xA1, 1, 1000, 500),
    ):
        gcs.handle(msg, 1.0, out)
    store = GcsStore(tmp_path)
    ops = Ops()
    store.bind(ops.schedule)
    for cmd in out:
        assert isinstance(cmd, Persist) or type(cmd).__name__ == "Send"
        if isinstance(cmd, Persist):
            store.persist(cmd, 1.0)
    assert ops.queued == [1]  # one flush op for the whole batch
    store.flush()
    store.put("meta", "next_worker_id", 7)
    store.persist(Persist("objects", 0xA1, None), 2.0)  # freed: the row goes
    store.close()
    again = GcsStore(tmp_path)
    try:
        rows, host = again.load()
        assert host["meta"] == {"next_worker_id": 7}
        by_key = {(t, k): v for t, k, v in rows}
        assert ("objects", 0xA1) not in by_key
        assert by_key[("actors", 1)].name == "keeper" and by_key[("actors", 1)].node == 1
        fresh = Gcs(0, gs_addr=1)
        fresh.restore(rows, 0.0, [])
        assert fresh.actor_named("keeper") == 1
    finally:
        again.close()
    db = sqlite3.connect(tmp_path / "gcs.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gcs.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(GcsStoreError, match="cannot open the GCS store"):
        GcsStore(tmp_path)
