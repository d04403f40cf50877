"""The error the serve decision objects raise for a bad setting (a ValueError, as in Ray)."""

from __future__ import annotations


class ServeConfigError(ValueError):
    """A router, batcher or replica-set setting is out of range; the message names it."""


class ReplicaStateError(RuntimeError):
    """A host reported an event a replica's state does not allow (e.g. RUNNING after DEAD)."""
