"""The error a core component's ``check()`` raises when its state breaks an invariant."""

from __future__ import annotations


class InvariantError(AssertionError):
    """A core component's state is inconsistent (raised by ``check()``, a debugging aid)."""
