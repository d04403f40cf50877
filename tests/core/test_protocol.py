"""The typed protocol: every message, host event and command has one base, and every host carries out every command."""

from __future__ import annotations

import inspect
import random
from typing import Any

import pytest

from runtime.core import messages
from runtime.core.messages import Command, HostEvent, Message
from tests.core.fake_host import FakeHost

BASES = (Message, HostEvent, Command)


def _protocol_classes() -> list[type]:
    """Every dataclass defined in runtime.core.messages (the bases excluded)."""
    return [
        cls
        for _, cls in inspect.getmembers(messages, inspect.isclass)
        if cls.__module__ == messages.__name__ and cls not in BASES
    ]


def _kind(base: type) -> set[type]:
    return {cls for cls in _protocol_classes() if issubclass(cls, base)}


def _command_table(host: Any, name: str) -> dict[type, Any]:
    """The host's command table: the attribute ``name`` if it has one, else the one dict
    found on the host (or one of its parts) whose keys are all command types."""
    table = getattr(host, name, None)
    if isinstance(table, dict):
        return table
    found = []
    for holder in [host, *vars(host).values()]:
        for value in getattr(holder, "__dict__", {}).values():
            keys = value.keys() if isinstance(value, dict) else ()
            if keys and all(isinstance(k, type) and issubclass(k, Command) for k in keys):
                found.append(value)
    assert len(found) == 1, f"cannot find the command table of {type(host).__name__}"
    return found[0]


def _missing(table: dict[type, Any]) -> list[str]:
    return sorted(c.__name__ for c in _kind(Command) - table.keys())


def test_every_protocol_class_derives_from_exactly_one_base() -> None:
    classes = _protocol_classes()
    assert len(classes) > 60  # the whole protocol, not an empty module
    for cls in classes:
        bases = [b for b in BASES if issubclass(cls, b)]
        assert len(bases) == 1, f"{cls.__name__} derives from {bases}"
        assert "__dict__" not in dir(cls), f"{cls.__name__} instances are not slotted"
    for kind in BASES:
        assert _kind(kind), f"no {kind.__name__} at all"


def test_the_misfiled_entries_are_filed_by_what_they_are() -> None:
    assert issubclass(messages.ActorWorkerDied, HostEvent)
    for cls in (messages.KillWorker, messages.ActorStateChanged):
        assert issubclass(cls, Command)
    for cls in (messages.ObjectReady, messages.ObjectFreed):
        assert issubclass(cls, Command)
        assert "command named like an event" in (cls.__doc__ or "").lower()


def test_the_fake_host_carries_out_every_command() -> None:
    table = _command_table(FakeHost(nodes=1), "_commands")
    assert _missing(table) == []
    assert all(issubclass(k, Command) for k in table)


def test_the_simulator_host_carries_out_every_command() -> None:
    from sim.host import Host
    from sim.metrics import MetricsRecorder
    from sim.network import Network
    from sim.scenario import NetworkSpec

    host = Host(Network(NetworkSpec(), 2), MetricsRecorder(), random.Random(0))
    table = _command_table(host, "_commands")
    assert _missing(table) == []
    assert all(issubclass(k, Command) for k in table)


def test_the_real_host_carries_out_every_command() -> None:
    import runtime as ray
    from runtime.api import _current_node

    ray.init(num_cpus=1)
    try:
        table = _command_table(_current_node(), "_effects")
    finally:
        ray.shutdown()
    assert _missing(table) == []
    assert all(issubclass(k, Command) for k in table)


def test_the_table_finder_fails_on_a_host_without_a_table() -> None:
    class NoTable:
        def __init__(self) -> None:
            self.things = {1: 2}

    with pytest.raises(AssertionError, match="cannot find the command table"):
        _command_table(NoTable(), "_commands")
    partial = {messages.Send: None}
    assert "Dispatch" in _missing(partial)


def test_every_message_and_host_event_has_a_handler() -> None:
    host = FakeHost(nodes=1)
    handled: set[type] = set()
    for component in host.components.values():
        handled |= component._handlers.keys()
    unhandled = sorted(c.__name__ for c in (_kind(Message) | _kind(HostEvent)) - handled)
    assert unhandled == []
    assert not handled & _kind(Command), "a component handles a command"
