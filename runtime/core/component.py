"""The base class of the core's components: the two calls every host makes, ``start`` and ``handle``.

Hosts keep their components as `Component` (``sim.host``: ``dict[int, Component]``), so
that a compiled host calls ``handle`` through the class's method table (mypyc's vtable)
instead of a generic attribute lookup and call. Interpreted classes may derive from it
too (a host's test doubles, a simulated failing replica): the compiled base allows it.
"""

from __future__ import annotations

from typing import Any

from mypy_extensions import mypyc_attr  # a runtime dependency (pyproject): tiny, pure Python

from runtime.core.messages import Command


@mypyc_attr(allow_interpreted_subclasses=True)
class Component:
    """A sans-I/O component of the control plane: messages in, commands out."""

    __slots__ = ()

    def start(self, now: float, out: list[Command]) -> None:
        """Append the commands the component issues when it starts (none by default)."""

    def handle(self, msg: Any, now: float, out: list[Command]) -> None:
        """React to one message or host event (a `Message` or `HostEvent`) at `now`,
        appending commands to `out`. (`msg` is typed Any here so that a compiled host
        passes it on unchecked; each component's own signature names the bases.)"""
        raise NotImplementedError
