"""Every component a host drives derives from `Component` (a compiled host requires it)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.core.chain import ChainClient, ChainMaster, ChainReplica
from runtime.core.component import Component
from runtime.core.gcs import Gcs
from runtime.core.global_scheduler import GlobalScheduler
from runtime.core.owner import Owner
from runtime.core.raylet import Raylet
from sim.gcs_chain import FAILURES


@pytest.mark.parametrize(
    "cls",
    [
        Raylet,
        Owner,
        Gcs,
        GlobalScheduler,
        ChainReplica,
        ChainMaster,
        ChainClient,
        *FAILURES.values(),
    ],
)
def test_hosted_classes_are_components(cls: type) -> None:
    # sim.host keeps dict[int, Component]: compiled, anything else is refused (TypeError)
    assert issubclass(cls, Component)


def test_the_base_starts_with_nothing_and_handles_nothing() -> None:
    out: list[Any] = []
    Component().start(0.0, out)
    assert out == []
    with pytest.raises(NotImplementedError):
        Component().handle(object(), 0.0, out)


def test_a_gcs_with_persistence_follows_each_message_with_its_rows() -> None:
    from runtime.core.messages import Persist, RegisterNode

    gcs = Gcs(addr=1)
    out: list[Any] = []
    gcs.handle(RegisterNode(0, 2, {"CPU": 1.0}, 1 << 20), 0.0, out)
    assert not any(isinstance(c, Persist) for c in out)
    gcs.enable_persistence()
    out.clear()
    gcs.handle(RegisterNode(1, 3, {"CPU": 1.0}, 1 << 20), 0.0, out)
    assert any(isinstance(c, Persist) for c in out)
