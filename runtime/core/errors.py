"""Exceptions of the core's protocols, in a module left interpreted (see ``sim.fast``)."""

from __future__ import annotations


class ChainProtocolError(RuntimeError):
    """A chain component received what the protocol says cannot happen."""
