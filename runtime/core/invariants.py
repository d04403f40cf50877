"""The error a component's ``check()`` raises when its state breaks one of its invariants."""

from __future__ import annotations


class InvariantError(AssertionError):
    """A core component's state is inconsistent (raised by ``check()``, never on the hot path).

    It derives from ``AssertionError`` because it reports a bug in the core, not bad input:
    the message names the component, the task or object, and the invariant it breaks.
    """
