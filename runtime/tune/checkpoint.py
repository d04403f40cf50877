"""``tune.Checkpoint``: a directory of files a trial saved, to resume or clone it from."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from runtime.tune.errors import TuneError


class Checkpoint:
    """A checkpoint: the local directory ``path`` holding a trial's saved state (Ray's class).

    Build one with ``Checkpoint.from_directory(path)``; read it with ``as_directory()`` (a
    context manager yielding a directory) or ``to_directory(path)`` (a copy).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise TuneError(f"a Checkpoint is a directory; {path!r} is not one")
        self.path = os.path.abspath(path)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """The checkpoint held in the existing directory ``path``."""
        return cls(path)

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temporary directory if None)."""
        target = tempfile.mkdtemp(prefix="checkpoint_") if path is None else os.fspath(path)
        os.makedirs(target, exist_ok=True)
        shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """Yield a local directory with the checkpoint's files (its own, as it is local)."""
        yield self.path

    def get_metadata(self) -> dict[str, Any]:
        """The metadata dict stored with the checkpoint ({} when none)."""
        import json

        meta = os.path.join(self.path, ".metadata.json")
        if not os.path.exists(meta):
            return {}
        with open(meta) as f:
            return dict(json.load(f))

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the checkpoint's metadata with ``metadata`` (JSON-serialisable)."""
        import json

        with open(os.path.join(self.path, ".metadata.json"), "w") as f:
            json.dump(metadata, f)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into the checkpoint's metadata."""
        merged = self.get_metadata()
        merged.update(metadata)
        self.set_metadata(merged)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r})"
